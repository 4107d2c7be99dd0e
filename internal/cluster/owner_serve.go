package cluster

import (
	"context"
	"time"

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

	rn := o.newRenewer(lease)
	defer rn.close()
	for {
		select {
		case err := <-done:
			return err
		case <-rn.deadline.C:
			if rn.expired() {
				cancel() // lease lost
			}
		case <-rn.tick.C:
			if o.fc.live(time.Now()) {
				rn.renew(ctx)
			}
		case r := <-rn.results:
			if rn.outcome(r) == leaseGone {
				o.fc.lost()
				cancel()
			}
		}
	}
}
