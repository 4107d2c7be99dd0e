package cluster

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// serve runs the handler's Serve while renewing the lease. A takeover may
// take longer than the lease (a takeover hook importing a zpool takes
// seconds, bounded by its own timeout, not by the TTL); nothing is served
// until Serve returns, so keeping the lease meanwhile is safe, and it
// keeps the other nodes from campaigning for an LU this node is still
// opening. When the lease cannot be kept, Serve's context is cancelled and
// hold, finding the deadline passed, stops the LU again.
func (o *Owner) serve(ctx context.Context, lease clientv3.LeaseID, token int64) error {
	return o.whileRenewing(ctx, lease, func(sctx context.Context) error { return o.h.Serve(sctx, o.guid, token) })
}

// handOver runs the handler's Release after Stop. With the lease still
// this node's (held), it is renewed meanwhile — a node leaving or a
// planned move keeps it until the store is handed over, whatever the
// node's shutdown context says; after a self-fence no renewal is tried
// and the lease expires on its own: the store's own fence (the pool
// import) then keeps the next owner out until the export.
func (o *Owner) handOver(ctx context.Context, lease clientv3.LeaseID, token int64, held bool) {
	r, ok := o.h.(Releaser)
	if !ok {
		return
	}
	if !held {
		r.Release(o.guid, token)
		return
	}
	_ = o.whileRenewing(context.WithoutCancel(ctx), lease, func(context.Context) error {
		r.Release(o.guid, token) // not cancelled: an export half done helps nobody
		return nil
	})
}

// whileRenewing runs f while renewing the lease as long as the fence
// deadline allows; f's context ends when the lease is lost.
func (o *Owner) whileRenewing(ctx context.Context, lease clientv3.LeaseID, f func(context.Context) error) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(sctx) }()

	renewT := time.NewTicker(o.c.cfg.Renew)
	defer renewT.Stop()
	deadline := time.NewTimer(o.fc.remaining(time.Now()))
	defer deadline.Stop()
	results := make(chan renewal, 1)
	inflight := false
	for {
		select {
		case err := <-done:
			return err
		case <-deadline.C:
			if o.fc.live(time.Now()) {
				deadline.Reset(o.fc.remaining(time.Now()))
				continue
			}
			cancel() // lease lost
		case <-renewT.C:
			if !inflight && o.fc.live(time.Now()) {
				inflight = true
				o.renewAsync(ctx, lease, results)
			}
		case r := <-results:
			inflight = false
			switch {
			case r.err == nil && r.ttl > 0:
				o.fc.granted(r.sent, r.ttl)
			case errors.Is(r.err, rpctypes.ErrLeaseNotFound) || (r.err == nil && r.ttl <= 0):
				o.fc.lost()
				cancel()
			default:
				o.c.log.Warn("cluster: lease renewal failed", "lu", o.guid, "err", r.err, "left", o.fc.remaining(time.Now()))
			}
		}
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
