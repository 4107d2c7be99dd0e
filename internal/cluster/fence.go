package cluster

import "time"

// The self-fence timing argument (README "Cluster (etcd)"):
//
// etcd starts a lease's TTL when it receives the grant or keep-alive, which
// is after this node sent it. So a renewal sent at local time s keeps the
// lease alive for others until at least s+TTL on the leader's clock — later
// still if the leader changes (a new leader extends every lease). An owner
// that stops serving at s+TTL−Margin, s being the send time of its last
// successful renewal on its monotonic clock, therefore stops before any
// other node can see the lease expire, as long as the two clocks' rates
// differ by less than Margin/TTL (20% by default; real drift is parts per
// million) and stopping the LU's commands takes less than the remainder.
// A new owner creates the ownership key only once the old one is gone
// (it was under the expired lease), so it starts after the old owner
// stopped.

// fenceClock is the owner's local view of its lease: the deadline by which
// it must have stopped serving. It is pure (times are passed in) so the
// state machine is tested with a fake clock.
type fenceClock struct {
	ttl, margin time.Duration
	deadline    time.Time // zero: no lease held
}

// granted records a lease grant or renewal whose request was sent at sent
// and which etcd answered with a TTL of ttl (the server's word wins when it
// is shorter than configured).
func (f *fenceClock) granted(sent time.Time, ttl time.Duration) {
	if ttl <= 0 || ttl > f.ttl {
		ttl = f.ttl
	}
	d := sent.Add(ttl - f.margin)
	if d.After(f.deadline) {
		f.deadline = d
	}
}

// lost forgets the lease (revoked, expired or handed over).
func (f *fenceClock) lost() { f.deadline = time.Time{} }

// live reports whether the owner may still serve at now.
func (f *fenceClock) live(now time.Time) bool {
	return !f.deadline.IsZero() && now.Before(f.deadline)
}

// remaining is the time left to serve (0 when not live).
func (f *fenceClock) remaining(now time.Time) time.Duration {
	if !f.live(now) {
		return 0
	}
	return f.deadline.Sub(now)
}
