package cluster

import (
	"context"
	"slices"
	"testing"
	"time"
)

// slowNode takes an LU over in `take` (a takeover hook importing a pool).
type slowNode struct {
	node
	take    time.Duration
	entered chan struct{}
}

func (n slowNode) Serve(ctx context.Context, guid string, token int64) error {
	close(n.entered)
	select {
	case <-time.After(n.take):
	case <-ctx.Done():
		return ctx.Err()
	}
	return n.node.Serve(ctx, guid, token)
}

// A takeover lasting three lease TTLs: the owner renews meanwhile, so the
// other node never gets the LU and the slow node serves afterwards
// (without renewing, b would win the expired lease and serve first, and
// a would self-fence once its Serve returned).
func TestSlowTakeoverKeepsTheLease(t *testing.T) {
	e := startEtcd(t, 1)
	w := newWorld()
	ctx := t.Context()
	ca, cb := client(t, e, "a"), client(t, e, "b") // TTL 2s
	a := slowNode{node: node{w, "a"}, take: 3 * 2 * time.Second, entered: make(chan struct{})}
	oa := ca.Own(ctx, testGUID, a)
	defer oa.Close()
	select {
	case <-a.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("a never started taking the LU over")
	}
	ob := cb.Own(ctx, testGUID, node{w, "b"})
	defer ob.Close()
	who, _ := w.one(t, 15*time.Second)
	if who != "a" {
		t.Fatalf("%s serves, want a (it held the lease while taking over)", who)
	}
	// Bounded look: a keeps serving, b never did.
	time.Sleep(2 * time.Second)
	w.mu.Lock()
	events := slices.Clone(w.events)
	w.mu.Unlock()
	if !slices.Equal(events, []string{"serve a"}) {
		t.Fatalf("events %v, want only a serving", events)
	}
	if st := oa.State(); !st.Serving || st.Token <= 0 {
		t.Fatalf("a's state %+v", st)
	}
	w.check(t)
}

// cancelNode's Serve waits until its context ends and reports why.
type cancelNode struct {
	entered chan struct{}
	ended   chan error
}

func (n cancelNode) Serve(ctx context.Context, guid string, token int64) error {
	close(n.entered)
	<-ctx.Done()
	n.ended <- ctx.Err()
	return ctx.Err()
}

func (n cancelNode) Stop(guid, reason string) {}

// The lease lost while taking over (etcd gone): Serve's context ends at
// the fence deadline, so a takeover hook does not run on for a lease
// another node may get.
func TestTakeoverCancelledWhenLeaseLost(t *testing.T) {
	e := startEtcd(t, 1)
	c := client(t, e, "a") // TTL 2s
	n := cancelNode{entered: make(chan struct{}), ended: make(chan error, 1)}
	o := c.Own(t.Context(), testGUID, n)
	defer o.Close()
	select {
	case <-n.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("never started taking the LU over")
	}
	e.Stop(0)
	select {
	case err := <-n.ended:
		if err == nil {
			t.Fatal("Serve's context ended without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("takeover still running 10 s after etcd went away (lease TTL 2 s)")
	}
	if o.State().Serving {
		t.Fatal("serving after the lease was lost")
	}
}

// releasingNode hands the LU's store over in `take` after Stop.
type releasingNode struct {
	node
	take time.Duration
}

func (n releasingNode) Release(guid string, token int64) {
	time.Sleep(n.take)
	n.w.mu.Lock()
	n.w.events = append(n.w.events, "release "+n.name)
	n.w.mu.Unlock()
}

// A release lasting three lease TTLs (a zpool export): the leaving owner
// keeps the lease until it is done, so the next owner serves only after
// it (without renewing, b would win the expired lease during the export).
func TestSlowReleaseKeepsTheLease(t *testing.T) {
	e := startEtcd(t, 1)
	w := newWorld()
	ctx := t.Context()
	ca, cb := client(t, e, "a"), client(t, e, "b") // TTL 2s
	oa := ca.Own(ctx, testGUID, releasingNode{node: node{w, "a"}, take: 3 * 2 * time.Second})
	if who, _ := w.one(t, 10*time.Second); who != "a" {
		t.Fatalf("%s serves first", who)
	}
	ob := cb.Own(ctx, testGUID, node{w, "b"})
	defer ob.Close()
	eventually(t, 5*time.Second, "b sees a own the LU", func() bool { return ob.State().Owner == "a" })
	closed := make(chan struct{})
	go func() { oa.Close(); close(closed) }()
	eventually(t, 20*time.Second, "b serves after a left", func() bool {
		s, _ := w.snapshot()
		_, b := s["b"]
		return b && len(s) == 1
	})
	<-closed
	w.mu.Lock()
	events := slices.Clone(w.events)
	w.mu.Unlock()
	if want := []string{"serve a", "stop a: node leaving", "release a", "serve b"}; !slices.Equal(events, want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	w.check(t)
}
