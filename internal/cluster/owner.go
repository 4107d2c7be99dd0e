package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Handler is what the daemon does when this node gains or loses an LU.
type Handler interface {
	// Serve runs after this node won the LU's lease and recorded the
	// fencing token, before any command is served: open the backing
	// store, load metadata, then turn the LU's ports active. The lease is
	// renewed while it runs; ctx ends when the lease is lost or the node
	// leaves. An error gives the lease up again.
	Serve(ctx context.Context, guid string, token int64) error
	// Stop must return only once the LU serves no more media commands on
	// this node (standby set and in-flight commands drained or aborted).
	// It runs before the lease can expire for others (fence.go).
	Stop(guid string, reason string)
}

// Releaser is an optional Handler extension. Release runs after Stop,
// before the lease is given up and while it is renewed (when it still can
// be): the node hands the LU's store over (a zpool export) before the
// next owner can start taking it. token is the tenure's fencing token.
type Releaser interface {
	Release(guid string, token int64)
}

// Ownership is the owner key's value.
type Ownership struct {
	Node  string    `json:"node"`
	Since time.Time `json:"since"`
	// Serving: the owner finished taking over (hook, fencing token,
	// journal) and serves I/O; a planned switchover waits for it.
	Serving bool `json:"serving,omitempty"`
}

// OwnerState is what an Owner reports.
type OwnerState struct {
	Serving bool
	Token   int64  // fencing token of this node's tenure (0: none)
	Owner   string // the owner as last seen ("" unknown or none)
}

// Owner campaigns for one LU for as long as the node has it.
type Owner struct {
	c    *Client
	guid string
	h    Handler
	fc   fenceClock

	mu     sync.Mutex
	st     OwnerState
	cancel context.CancelFunc
	done   chan struct{}
}

// ErrFenced is returned for a fencing token that is no longer the LU's
// newest: its holder was deposed and must not write.
var ErrFenced = errors.New("cluster: fencing token superseded (deposed owner)")

var errTaken = errors.New("cluster: ownership taken by another node")

// Own starts campaigning for the LU. The handler hears when this node
// starts and stops serving it. Close stops.
func (c *Client) Own(ctx context.Context, guid string, h Handler) *Owner {
	o := &Owner{c: c, guid: guid, h: h, fc: fenceClock{ttl: c.cfg.TTL, margin: c.cfg.Margin}, done: make(chan struct{})}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o.cancel = cancel
	go o.run(rctx)
	return o
}

// State returns the owner's current state.
func (o *Owner) State() OwnerState {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.st
}

// Close stops campaigning; an owner stops serving and gives the lease up
// at once (the next owner need not wait for the TTL).
func (o *Owner) Close() {
	o.cancel()
	<-o.done
}

func (o *Owner) set(f func(*OwnerState)) {
	o.mu.Lock()
	f(&o.st)
	o.mu.Unlock()
}

func (o *Owner) run(ctx context.Context) {
	defer close(o.done)
	cfg := o.c.cfg
	for ctx.Err() == nil {
		if err := o.waitFree(ctx); err != nil {
			if ctx.Err() == nil {
				o.c.log.Debug("cluster: waiting for LU ownership", "lu", o.guid, "err", err)
				pause(ctx, cfg.Renew)
			}
			continue
		}
		lease, token, sent, ttl, err := o.acquire(ctx)
		if errors.Is(err, errTaken) {
			continue
		}
		if err != nil {
			o.c.log.Debug("cluster: acquiring LU ownership", "lu", o.guid, "err", err)
			pause(ctx, cfg.Renew)
			continue
		}
		o.hold(ctx, lease, token, sent, ttl)
	}
}

// waitFree returns once the LU has no owner and no planned switchover
// names another node.
func (o *Owner) waitFree(ctx context.Context) error {
	c := o.c
	for {
		resp, err := c.cli.Txn(leaderCtx(ctx)).Then(
			clientv3.OpGet(c.cfg.ownerKey(o.guid)),
			clientv3.OpGet(c.cfg.moveKey(o.guid)),
		).Commit()
		if err != nil {
			return err
		}
		own := resp.Responses[0].GetResponseRange().Kvs
		mv := resp.Responses[1].GetResponseRange().Kvs
		watchKey := ""
		switch {
		case len(own) > 0:
			var w Ownership
			_ = json.Unmarshal(own[0].Value, &w)
			o.set(func(s *OwnerState) { s.Owner = w.Node })
			watchKey = c.cfg.ownerKey(o.guid)
		case len(mv) > 0 && string(mv[0].Value) != c.cfg.Node:
			watchKey = c.cfg.moveKey(o.guid) // the named node goes first
		default:
			o.set(func(s *OwnerState) { s.Owner = "" })
			return nil
		}
		wctx, cancel := context.WithCancel(leaderCtx(ctx))
		wch := c.cli.Watch(wctx, watchKey, clientv3.WithRev(resp.Header.Revision+1))
		gone := false
		for !gone {
			wr, ok := <-wch
			if !ok {
				cancel()
				return ctx.Err()
			}
			if err := wr.Err(); err != nil {
				cancel()
				return err
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					gone = true
				}
			}
		}
		cancel()
	}
}

// acquire creates the owner key under a new lease, if it is still absent.
// The Txn's revision is the fencing token: it is the owner key's create
// revision and the fence key's mod revision, both bigger than any earlier
// takeover's.
func (o *Owner) acquire(ctx context.Context) (clientv3.LeaseID, int64, time.Time, time.Duration, error) {
	c := o.c
	sent := time.Now()
	g, err := c.cli.Grant(leaderCtx(ctx), c.ttlSeconds())
	if err != nil {
		return 0, 0, sent, 0, fmt.Errorf("lease: %w", err)
	}
	val, _ := json.Marshal(Ownership{Node: c.cfg.Node, Since: sent.UTC()})
	mk := c.cfg.moveKey(o.guid)
	resp, err := c.cli.Txn(leaderCtx(ctx)).If(
		clientv3.Compare(clientv3.CreateRevision(c.cfg.ownerKey(o.guid)), "=", 0),
	).Then(
		clientv3.OpPut(c.cfg.ownerKey(o.guid), string(val), clientv3.WithLease(g.ID)),
		clientv3.OpPut(c.cfg.fenceKey(o.guid), c.cfg.Node),
		clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value(mk), "=", c.cfg.Node)},
			[]clientv3.Op{clientv3.OpDelete(mk)}, nil),
	).Commit()
	if err == nil && !resp.Succeeded {
		err = errTaken
	}
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_, _ = c.cli.Revoke(rctx, g.ID)
		cancel()
		return 0, 0, sent, 0, err
	}
	return g.ID, resp.Header.Revision, sent, time.Duration(g.TTL) * time.Second, nil
}

// hold serves the LU while the lease is renewed in time; it returns after
// the handler's Stop, with the lease given up or expired.
func (o *Owner) hold(ctx context.Context, lease clientv3.LeaseID, token int64, sent time.Time, ttl time.Duration) {
	c := o.c
	o.fc.lost()
	o.fc.granted(sent, ttl)
	if err := o.serve(ctx, lease, token); err != nil { // renewing meanwhile (owner_serve.go)
		c.log.Warn("cluster: could not take the LU over; giving it up", "lu", o.guid, "err", err)
		o.release(lease)
		pause(ctx, c.cfg.TTL) // let another node try first
		return
	}
	if !o.fc.live(time.Now()) {
		// The lease was not kept while taking over: stop before it
		// can expire for others.
		o.stop(ctx, lease, token, "lease lost while taking over", true)
		return
	}
	o.set(func(s *OwnerState) { *s = OwnerState{Serving: true, Token: token, Owner: c.cfg.Node} })
	c.log.Info("cluster: serving LU", "lu", o.guid, "token", token)
	o.markServing(ctx, lease, token, sent)

	w := o.watch(ctx, token)
	defer func() { w.cancel() }()
	wch, och := w.move, w.owner

	rn := o.newRenewer(lease) // renewer.go
	defer rn.close()
	for {
		select {
		case <-ctx.Done():
			o.stop(ctx, lease, token, "node leaving", true)
			return
		case <-rn.deadline.C:
			if rn.expired() {
				o.stop(ctx, lease, token, "lease not renewed in time (self-fence)", true)
				return
			}
		case <-rn.tick.C:
			rn.renew(ctx)
		case r := <-rn.results:
			switch rn.outcome(r) {
			case renewed:
				if wch == nil || och == nil {
					// A watch broke (etcd member lost its leader); the
					// renewal says etcd is back: watch from the start of
					// the tenure again so no event is missed.
					w.cancel()
					w = o.watch(ctx, token)
					wch, och = w.move, w.owner
				}
			case leaseGone:
				o.stop(ctx, lease, token, "lease gone", false)
				return
			}
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				wch = nil // re-watched after the next renewal
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.PUT && string(ev.Kv.Value) != c.cfg.Node {
					o.stop(ctx, lease, token, "moved to "+string(ev.Kv.Value), true)
					return
				}
			}
		case wr, ok := <-och:
			if !ok || wr.Err() != nil {
				och = nil
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					o.stop(ctx, lease, token, "ownership key deleted", false)
					return
				}
			}
		}
	}
}

// markServing says in the owner key that this tenure serves I/O (Move
// returns on it). The key keeps its lease and create revision (the
// token); a tenure that already ended changes nothing. A failure only
// delays a waiting move-lu, so it is logged, not acted on.
func (o *Owner) markServing(ctx context.Context, lease clientv3.LeaseID, token int64, since time.Time) {
	c := o.c
	val, _ := json.Marshal(Ownership{Node: c.cfg.Node, Since: since.UTC(), Serving: true})
	rctx, cancel := context.WithTimeout(leaderCtx(ctx), c.cfg.Renew)
	defer cancel()
	k := c.cfg.ownerKey(o.guid)
	_, err := c.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", token)).
		Then(clientv3.OpPut(k, string(val), clientv3.WithLease(lease))).Commit()
	if err != nil {
		c.log.Warn("cluster: recording that the LU is served", "lu", o.guid, "err", err)
	}
}

// tenureWatch watches, from the start of a tenure, the owner key (deleted:
// lease revoked by someone) and the move key (a planned switchover).
type tenureWatch struct {
	move, owner clientv3.WatchChan
	cancel      context.CancelFunc
}

func (o *Owner) watch(ctx context.Context, token int64) tenureWatch {
	wctx, cancel := context.WithCancel(leaderCtx(ctx))
	return tenureWatch{
		move:   o.c.cli.Watch(wctx, o.c.cfg.moveKey(o.guid), clientv3.WithRev(token+1)),
		owner:  o.c.cli.Watch(wctx, o.c.cfg.ownerKey(o.guid), clientv3.WithRev(token+1)),
		cancel: cancel,
	}
}

// stop has the handler stop serving, then (release) gives the lease up so
// the next owner starts at once. Giving it up after stopping is always
// safe; after a self-fence it shortens the outage when etcd answers again
// (a leader change may have kept the lease alive), and fails harmlessly
// when it does not.
func (o *Owner) stop(ctx context.Context, lease clientv3.LeaseID, token int64, reason string, release bool) {
	o.h.Stop(o.guid, reason)
	o.handOver(ctx, lease, token, release) // owner_serve.go
	o.fc.lost()
	o.set(func(s *OwnerState) { *s = OwnerState{} })
	o.c.log.Info("cluster: stopped serving LU", "lu", o.guid, "reason", reason)
	if release {
		o.release(lease)
	}
}

func (o *Owner) release(lease clientv3.LeaseID) {
	rctx, cancel := context.WithTimeout(context.Background(), o.c.cfg.Renew)
	defer cancel()
	if _, err := o.c.cli.Revoke(rctx, lease); err != nil {
		o.c.log.Warn("cluster: giving the lease up; it expires by itself", "lu", o.guid, "err", err)
	}
}

// CheckToken succeeds only while token is the LU's newest fencing token. A
// writer of replicated state (metadata, reservations) conditions its
// commit on it so a deposed owner's late write is refused.
func (c *Client) CheckToken(ctx context.Context, guid string, token int64) error {
	resp, err := c.cli.Get(leaderCtx(ctx), c.cfg.fenceKey(guid))
	if err != nil {
		return fmt.Errorf("cluster: reading the fencing token: %w", err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].ModRevision != token {
		return fmt.Errorf("%w: LU %s token %d", ErrFenced, guid, token)
	}
	return nil
}

// TokenCmp is the Txn condition for a commit fenced by token.
func (c *Client) TokenCmp(guid string, token int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(c.cfg.fenceKey(guid)), "=", token)
}
