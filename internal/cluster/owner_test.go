package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/cluster/clustertest"
)

const testGUID = "600144f0c0a8000100000000000000aa"

// world records which nodes serve the LU and fails on any overlap: the
// safety property the lease timing must give (a new owner's Serve runs
// only after the old owner's Stop).
type world struct {
	mu       sync.Mutex
	serving  map[string]int64
	events   []string
	overlaps []string
	// serveDelay makes Serve take this long (a slow takeover: hook,
	// fencing token).
	serveDelay time.Duration
}

func newWorld() *world { return &world{serving: map[string]int64{}} }

type node struct {
	w    *world
	name string
}

func (n node) Serve(_ context.Context, guid string, token int64) error {
	n.w.mu.Lock()
	d := n.w.serveDelay
	n.w.mu.Unlock()
	time.Sleep(d)
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	for other := range n.w.serving {
		n.w.overlaps = append(n.w.overlaps, fmt.Sprintf("%s serves while %s still does", n.name, other))
	}
	n.w.serving[n.name] = token
	n.w.events = append(n.w.events, "serve "+n.name)
	return nil
}

func (n node) Stop(guid, reason string) {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	delete(n.w.serving, n.name)
	n.w.events = append(n.w.events, "stop "+n.name+": "+reason)
}

func (w *world) snapshot() (map[string]int64, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := map[string]int64{}
	for k, v := range w.serving {
		s[k] = v
	}
	return s, append([]string(nil), w.overlaps...)
}

// eventually polls cond every 50ms for at most limit (a bound, not a
// timing assertion).
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within %v: %s", limit, what)
}

func startEtcd(t *testing.T, n int) *clustertest.Etcd {
	t.Helper()
	e, err := clustertest.Start(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func client(t *testing.T, e *clustertest.Etcd, name string) *Client {
	t.Helper()
	c, err := New(t.Context(), Config{Endpoints: e.Endpoints, Node: name, TTL: 2 * time.Second, DialTimeout: 2 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// serving waits until exactly one node serves and returns it.
func (w *world) one(t *testing.T, limit time.Duration) (string, int64) {
	t.Helper()
	var who string
	var tok int64
	eventually(t, limit, "one node serves", func() bool {
		s, _ := w.snapshot()
		for k, v := range s {
			who, tok = k, v
		}
		return len(s) == 1
	})
	return who, tok
}

func (w *world) check(t *testing.T) {
	t.Helper()
	if _, ov := w.snapshot(); len(ov) > 0 {
		t.Fatalf("two owners at once: %v", ov)
	}
}

// One owner; closing it hands over to the other at once; the deposed
// owner's token is refused; a planned move switches back.
func TestOwnershipHandoverAndMove(t *testing.T) {
	e := startEtcd(t, 3)
	w := newWorld()
	ctx := t.Context()
	ca, cb := client(t, e, "a"), client(t, e, "b")
	for _, c := range []*Client{ca, cb} {
		if _, err := c.Join(ctx, Member{Groups: []PortGroup{{ID: map[string]uint16{"a": 1, "b": 2}[c.Node()], Ports: []uint16{map[string]uint16{"a": 1, "b": 257}[c.Node()]}}}}); err != nil {
			t.Fatal(err)
		}
	}
	owners := map[string]*Owner{"a": ca.Own(ctx, testGUID, node{w, "a"}), "b": cb.Own(ctx, testGUID, node{w, "b"})}
	first, tok1 := w.one(t, 10*time.Second)
	if tok1 <= 0 {
		t.Fatalf("token %d", tok1)
	}
	other := map[string]string{"a": "b", "b": "a"}[first]
	eventually(t, 5*time.Second, "the other node sees the owner", func() bool { return owners[other].State().Owner == first })
	if err := ca.CheckToken(ctx, testGUID, tok1); err != nil {
		t.Fatalf("owner's own token refused: %v", err)
	}
	if info, err := ca.OwnerOf(ctx, testGUID); err != nil || info.Node != first || info.Token != tok1 {
		t.Fatalf("OwnerOf = %+v, %v", info, err)
	}

	owners[first].Close()
	second, tok2 := w.one(t, 10*time.Second)
	if second != other || tok2 <= tok1 {
		t.Fatalf("after close: %s token %d (was %s %d)", second, tok2, first, tok1)
	}
	if err := ca.CheckToken(ctx, testGUID, tok1); !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed owner's token %d: %v, want ErrFenced", tok1, err)
	}

	// The first node campaigns again; a planned move brings the LU back.
	owners[first] = map[string]*Client{"a": ca, "b": cb}[first].Own(ctx, testGUID, node{w, first})
	eventually(t, 5*time.Second, "the returning node sees the owner", func() bool { return owners[first].State().Owner == second })
	w.mu.Lock()
	w.serveDelay = 300 * time.Millisecond
	w.mu.Unlock()
	if err := ca.Move(ctx, testGUID, first); err != nil {
		t.Fatal(err)
	}
	// move-lu returns once the new owner serves, not when it wins the lease.
	if s, _ := w.snapshot(); s[first] == 0 {
		t.Fatalf("Move returned before %s's takeover finished: serving %v", first, s)
	}
	if info, err := ca.OwnerOf(ctx, testGUID); err != nil || info.Node != first || !info.Serving {
		t.Fatalf("OwnerOf after the move = %+v, %v", info, err)
	}
	if who, tok3 := w.one(t, 10*time.Second); who != first || tok3 <= tok2 {
		t.Fatalf("after move: %s token %d", who, tok3)
	}
	w.mu.Lock()
	moved := false
	for _, ev := range w.events {
		moved = moved || strings.Contains(ev, "moved to "+first)
	}
	w.mu.Unlock()
	if !moved {
		t.Errorf("the old owner did not stop for the move: %v", w.events)
	}
	if err := ca.Move(ctx, testGUID, "nobody"); err == nil {
		t.Error("move to a node that is not a member accepted")
	}
	if _, err := cb.Join(ctx, Member{}); err != nil {
		t.Logf("rejoin: %v", err)
	}
	w.check(t)
	for _, o := range owners {
		o.Close()
	}
}

// A second node claiming a group id or port id another node has is refused.
func TestJoinRefusesDuplicateGroups(t *testing.T) {
	e := startEtcd(t, 1)
	ca, cb := client(t, e, "a"), client(t, e, "b")
	ms, err := ca.Join(t.Context(), Member{Portals: []string{"127.0.0.1:3260"}, Groups: []PortGroup{{ID: 1, Ports: []uint16{1}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Leave()
	if _, err := cb.Join(t.Context(), Member{Groups: []PortGroup{{ID: 1, Ports: []uint16{300}}}}); err == nil {
		t.Error("duplicate group id accepted")
	}
	if _, err := cb.Join(t.Context(), Member{Groups: []PortGroup{{ID: 2, Ports: []uint16{1}}}}); err == nil {
		t.Error("duplicate relative port id accepted")
	}
	mb, err := cb.Join(t.Context(), Member{Groups: []PortGroup{{ID: 2, Ports: []uint16{257}}}})
	if err != nil {
		t.Fatal(err)
	}
	ms.SetHealth("degraded")
	eventually(t, 5*time.Second, "both members listed with health", func() bool {
		m, err := cb.Members(t.Context())
		return err == nil && len(m) == 2 && m[0].Name == "a" && m[0].Health == "degraded" && m[1].Portals == nil && m[0].LeaseTTL > 0
	})
	mb.Leave()
	eventually(t, 5*time.Second, "a leaving member is gone", func() bool {
		m, err := ca.Members(t.Context())
		return err == nil && len(m) == 1
	})
}

// etcd member loss: with the majority kept nothing changes; with the
// majority lost the owner self-fences and nobody serves; with the
// majority back an owner serves again.
func TestMajorityLoss(t *testing.T) {
	e := startEtcd(t, 3)
	w := newWorld()
	ctx := t.Context()
	ca, cb := client(t, e, "a"), client(t, e, "b")
	oa, ob := ca.Own(ctx, testGUID, node{w, "a"}), cb.Own(ctx, testGUID, node{w, "b"})
	defer oa.Close()
	defer ob.Close()
	who, tok := w.one(t, 10*time.Second)

	e.Stop(2)
	// Majority kept: two TTLs later the same owner, same token.
	time.Sleep(2 * 2 * time.Second)
	if s, _ := w.snapshot(); len(s) != 1 || s[who] != tok {
		t.Fatalf("one etcd member lost: serving %v, want %s with token %d", s, who, tok)
	}

	e.Stop(1)
	eventually(t, 10*time.Second, "the owner self-fences without a majority", func() bool {
		s, _ := w.snapshot()
		return len(s) == 0
	})
	// Nobody serves while the majority is gone (bounded look).
	for i := 0; i < 20; i++ {
		if s, _ := w.snapshot(); len(s) != 0 {
			t.Fatalf("serving without an etcd majority: %v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := e.Restart(1); err != nil {
		t.Fatal(err)
	}
	_, tok2 := w.one(t, 20*time.Second)
	if tok2 <= tok {
		t.Fatalf("token after the outage %d, before %d", tok2, tok)
	}
	w.check(t)
}
