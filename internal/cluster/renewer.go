package cluster

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// renewer keeps an ownership lease alive from a select loop (hold while
// serving, whileRenewing while taking over or handing over): a ticker to
// renew on, the fence deadline's timer, and at most one keep-alive in
// flight, whose outcome arrives on results.
type renewer struct {
	o        *Owner
	lease    clientv3.LeaseID
	tick     *time.Ticker
	deadline *time.Timer
	results  chan renewal
	inflight bool
}

// renewal is one keep-alive's outcome.
type renewal struct {
	sent time.Time
	ttl  time.Duration
	err  error
}

func (o *Owner) newRenewer(lease clientv3.LeaseID) *renewer {
	return &renewer{o: o, lease: lease, tick: time.NewTicker(o.c.cfg.Renew),
		deadline: time.NewTimer(o.fc.remaining(time.Now())), results: make(chan renewal, 1)}
}

func (r *renewer) close() {
	r.tick.Stop()
	r.deadline.Stop()
}

// expired is the deadline timer's case: true once the fence clock says
// the lease may be gone; otherwise the timer is re-armed for the
// deadline a renewal moved on.
func (r *renewer) expired() bool {
	if r.o.fc.live(time.Now()) {
		r.deadline.Reset(r.o.fc.remaining(time.Now()))
		return false
	}
	return true
}

// renew is the ticker's case: one keep-alive, unless one is in flight.
func (r *renewer) renew(ctx context.Context) {
	if r.inflight {
		return
	}
	r.inflight = true
	r.o.renewAsync(ctx, r.lease, r.results)
}

// renewOutcome is what a keep-alive's result means for the tenure.
type renewOutcome int

const (
	renewed     renewOutcome = iota // the fence deadline moved on
	renewFailed                     // logged; the deadline decides
	leaseGone                       // etcd no longer has the lease
)

// outcome is the results case.
func (r *renewer) outcome(res renewal) renewOutcome {
	r.inflight = false
	switch {
	case res.err == nil && res.ttl > 0:
		r.o.fc.granted(res.sent, res.ttl)
		return renewed
	case errors.Is(res.err, rpctypes.ErrLeaseNotFound) || (res.err == nil && res.ttl <= 0):
		return leaseGone
	default:
		r.o.c.log.Warn("cluster: lease renewal failed", "lu", r.o.guid, "err", res.err, "left", r.o.fc.remaining(time.Now()))
		return renewFailed
	}
}

// renewAsync sends one keep-alive, bounded by the fence deadline (no
// renewal outlives it), and reports it on results (buffered: the sender
// never blocks even when nobody reads any more).
func (o *Owner) renewAsync(ctx context.Context, lease clientv3.LeaseID, results chan<- renewal) {
	now := time.Now()
	left := max(o.fc.remaining(now), time.Millisecond)
	go func(s time.Time) {
		rctx, cancel := context.WithTimeout(leaderCtx(ctx), left)
		r, err := o.c.cli.KeepAliveOnce(rctx, lease)
		cancel()
		out := renewal{sent: s, err: err}
		if err == nil {
			out.ttl = time.Duration(r.TTL) * time.Second
		}
		results <- out
	}(now)
}
