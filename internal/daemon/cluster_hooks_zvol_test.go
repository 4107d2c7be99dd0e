package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/cluster/clustertest"
	"github.com/costar-project/costar/lu/zvol/zvoltest"
	"github.com/costar-project/costar/stmf"
)

// poolSim is one pool on shared disks, imported on one node at a time as
// zpool multihost=on allows: each node's ZFS is its own fake (sharing the
// device directory, as /dev/zvol names are the same on every node), the
// exported pool lives in a third one. The hooks the daemons run are
// recorded and move the pool's volumes between them.
type poolSim struct {
	devDir string
	disks  *zvoltest.Fake

	mu    sync.Mutex
	nodes map[string]*zvoltest.Fake
	fail  map[string]bool // the node's takeover hook fails before importing
	runs  []hookRec
	// onRelease, if set, runs first in every release hook (outside mu).
	onRelease func()
}

type hookRec struct {
	node   string
	run    hookRun
	luOpen bool // the LU was open on the node when its hook started
	err    error
}

func (r hookRec) String() string {
	return fmt.Sprintf("%s %s (open %v, err %v)", r.node, r.run.Action, r.luOpen, r.err)
}

func newPoolSim(t *testing.T) *poolSim {
	return &poolSim{devDir: t.TempDir(), disks: zvoltest.New(t.TempDir()), nodes: map[string]*zvoltest.Fake{}, fail: map[string]bool{}}
}

// node gives a (re)started node a fresh ZFS: nothing imported.
func (s *poolSim) node(name string) *zvoltest.Fake {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := zvoltest.New(s.devDir)
	s.nodes[name] = f
	return f
}

func (s *poolSim) setFail(node string, fail bool) {
	s.mu.Lock()
	s.fail[node] = fail
	s.mu.Unlock()
}

func (s *poolSim) records() []hookRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hookRec(nil), s.runs...)
}

// move is zpool export on one side and import on the other.
func move(from, to *zvoltest.Fake, name string) error {
	ctx := context.Background()
	v, err := from.Volume(ctx, name)
	if err != nil {
		return err
	}
	props := from.Props(name)
	data, err := os.ReadFile(from.Device(name))
	if err != nil {
		return err
	}
	if err := from.Destroy(ctx, name); err != nil {
		return err
	}
	if err := to.CreateVolume(ctx, name, v.Size, v.BlockSize, props); err != nil {
		return err
	}
	return os.WriteFile(to.Device(name), data, 0o600)
}

// runner is node's hook runner: takeover imports the volume's pool (fails
// while another node has it: multihost), release exports it (idempotent).
func (s *poolSim) runner(node string, d *Daemon) hookRunner {
	return func(ctx context.Context, path string, r hookRun) error {
		s.mu.Lock()
		gate := s.onRelease
		s.mu.Unlock()
		if r.Action == "release" && gate != nil {
			gate()
		}
		h, _ := d.mgr.HandoverLUOf(r.GUID)
		s.mu.Lock()
		defer s.mu.Unlock()
		mine := s.nodes[node]
		var err error
		switch {
		case r.Action == "takeover" && s.fail[node]:
			err = errors.New("cannot import 'tank': pool is imported on another host (multihost check)")
		case r.Action == "takeover" && !mine.Exists(r.Zvol):
			for other, f := range s.nodes {
				if other != node && f.Exists(r.Zvol) {
					err = fmt.Errorf("cannot import 'tank': imported on %s", other)
				}
			}
			if err == nil {
				err = move(s.disks, mine, r.Zvol)
			}
		case r.Action == "release" && mine.Exists(r.Zvol):
			err = move(mine, s.disks, r.Zvol)
		}
		s.runs = append(s.runs, hookRec{node: node, run: r, luOpen: h.Open, err: err})
		return err
	}
}

// hookCluster is what hook tests start from: a context bounding the
// test, a one-member etcd and the pool simulation.
func hookCluster(t *testing.T) (context.Context, []string, *poolSim) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e, err := clustertest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return ctx, e.Endpoints, newPoolSim(t)
}

// hookDaemon starts a cluster-mode daemon with both hooks, its zvols on
// the pool simulation. stop shuts it down (once).
func hookDaemon(ctx context.Context, t *testing.T, endpoints []string, node string, id int, sim *poolSim) (d *Daemon, stop func()) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Cluster = config.ClusterConfig{Endpoints: endpoints, Node: node, NodeID: id, LeaseTTL: 2 * time.Second, Prefix: "/costar/",
		TakeoverHook: "/hooks/zpool", ReleaseHook: "/hooks/zpool", HookTimeout: 5 * time.Second}
	d, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	d.lup.zfs = sim.node(node)
	d.runHook = sim.runner(node, d)
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { _ = d.Shutdown(context.Background()) }) }
	t.Cleanup(stop)
	return d, stop
}

func active(d *Daemon, g stmf.GUID) bool {
	a := d.fw.LUAccessOf(g)
	_, registered := d.fw.LU(g)
	return registered && a != nil && a.Local == stmf.ALUAActiveOptimized
}

// hookRuns waits (bounded) until the records match want, one line per
// hook run "node action ok|fail".
func hookRuns(t *testing.T, sim *poolSim, want ...string) []hookRec {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got = got[:0]
		for _, r := range sim.records() {
			st := "ok"
			if r.err != nil {
				st = "fail"
			}
			got = append(got, r.node+" "+r.run.Action+" "+st)
		}
		if strings.Join(got, ", ") == strings.Join(want, ", ") {
			return sim.records()
		}
	}
	t.Fatalf("hook runs %v, want %v", got, want)
	return nil
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within %v: %s", limit, what)
}

// Two nodes, one zvol on a pool imported on one node at a time. Node a
// creates the LU and owns it (its takeover hook ran with the LU's
// environment); node b knows the LU, waiting for its zvol, and campaigns.
// a shuts down: the LU goes standby, its zvol is closed, a's release hook
// exports the pool; b's takeover hook imports it, b opens the LU at once
// and serves it. a comes back with a takeover hook that fails: a move to
// a gives the lease up (a's release hook undoes), a stays standby, and b
// takes the LU back.
func TestClusterZvolHooks(t *testing.T) {
	ctx, endpoints, sim := hookCluster(t)

	da, stopA := hookDaemon(ctx, t, endpoints, "a", 1, sim)
	alias := "vm1"
	l, err := da.Manager().CreateZvolLU(ctx, api.CreateZvolLURequest{Zvol: "tank/vm1", Size: 1 << 20, VolBlockSize: 16384, Props: api.LUProps{Alias: &alias}})
	if err != nil {
		t.Fatal(err)
	}
	g := guidOf(t, l.GUID)
	runs := hookRuns(t, sim, "a takeover ok")
	if r := runs[0].run; r.GUID != l.GUID || r.Zvol != "tank/vm1" || r.Alias != "vm1" || r.Node != "a" || r.Token <= 0 {
		t.Fatalf("a's takeover hook saw %+v", r)
	}
	waitFor(t, 10*time.Second, "a serves the LU", func() bool { return active(da, g) })

	db, stopB := hookDaemon(ctx, t, endpoints, "b", 2, sim)
	waitFor(t, 10*time.Second, "b knows the LU, waiting for its zvol", func() bool {
		h, ok := db.Manager().HandoverLUOf(l.GUID)
		return ok && !h.Open && h.Zvol == "tank/vm1"
	})
	lb, err := db.Manager().ListLUs(ctx, api.Empty{})
	if err != nil || len(lb) != 1 || lb[0].Available || !strings.Contains(lb[0].StatusDetail, "waiting for zvol tank/vm1") {
		t.Fatalf("b's LUs: %+v, %v", lb, err)
	}
	waitFor(t, 10*time.Second, "b campaigns for the LU", func() bool {
		db.cluster.mu.Lock()
		defer db.cluster.mu.Unlock()
		return db.cluster.owners[l.GUID] != nil
	})
	// A QoS limit set on a reaches b's waiting LU (stored, held by stmf).
	iops := uint64(500)
	if _, err := da.Manager().ModifyLU(ctx, api.ModifyLURequest{GUID: l.GUID, Props: api.LUProps{QoSIOPS: &iops}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b holds a's QoS limit for its waiting LU", func() bool { return db.fw.QoS(g).IOPS == 500 })
	time.Sleep(500 * time.Millisecond) // bounded look: b does not take it
	if len(sim.records()) != 1 || active(db, g) {
		t.Fatalf("b acted while a owns the LU: %v", sim.records())
	}

	stopA()
	runs = hookRuns(t, sim, "a takeover ok", "a release ok", "b takeover ok")
	if runs[1].luOpen || runs[1].run.Token != runs[0].run.Token {
		t.Fatalf("a's release hook: LU open %v, token %d (tenure %d)", runs[1].luOpen, runs[1].run.Token, runs[0].run.Token)
	}
	if r := runs[2].run; r.Node != "b" || r.Zvol != "tank/vm1" || r.Token <= runs[0].run.Token {
		t.Fatalf("b's takeover hook saw %+v", r)
	}
	waitFor(t, 10*time.Second, "b serves the LU", func() bool { return active(db, g) })
	if h, _ := db.Manager().HandoverLUOf(l.GUID); !h.Open || h.Alias != "vm1" {
		t.Fatalf("b's LU after the takeover: %+v", h)
	}

	// a again, with a takeover hook that fails.
	sim.setFail("a", true)
	da, _ = hookDaemon(ctx, t, endpoints, "a", 1, sim)
	waitFor(t, 10*time.Second, "a knows the LU, waiting for its zvol", func() bool {
		h, ok := da.Manager().HandoverLUOf(l.GUID)
		return ok && !h.Open
	})
	if _, err := db.Manager().MoveLU(ctx, api.MoveLURequest{GUID: l.GUID, Node: "a"}); err == nil {
		t.Log("move-lu to a answered before a gave the LU up")
	}
	hookRuns(t, sim, "a takeover ok", "a release ok", "b takeover ok",
		"b release ok", "a takeover fail", "a release ok", "b takeover ok")
	waitFor(t, 10*time.Second, "b serves the LU again", func() bool { return active(db, g) })
	if active(da, g) {
		t.Fatal("a serves the LU after its takeover hook failed")
	}
	if h, _ := da.Manager().HandoverLUOf(l.GUID); h.Open {
		t.Fatalf("a opened the LU: %+v", h)
	}
	stopB()
}

// Stopping a node runs the release hooks of all its LUs at once: each
// waits here until the other has started (bounded), which a shutdown that
// released one LU after the other would never let happen.
func TestClusterShutdownReleasesConcurrently(t *testing.T) {
	ctx, endpoints, sim := hookCluster(t)
	da, stopA := hookDaemon(ctx, t, endpoints, "a", 1, sim)
	var guids []stmf.GUID
	for _, name := range []string{"tank/v1", "tank/v2"} {
		l, err := da.Manager().CreateZvolLU(ctx, api.CreateZvolLURequest{Zvol: name, Size: 1 << 20, VolBlockSize: 16384})
		if err != nil {
			t.Fatal(err)
		}
		guids = append(guids, guidOf(t, l.GUID))
	}
	for _, g := range guids {
		waitFor(t, 10*time.Second, "a serves both LUs", func() bool { return active(da, g) })
	}
	var (
		mu       sync.Mutex
		started  int
		both     = make(chan struct{})
		overlaps int
	)
	sim.mu.Lock()
	sim.onRelease = func() {
		mu.Lock()
		started++
		if started == 2 {
			close(both)
		}
		mu.Unlock()
		select {
		case <-both:
			mu.Lock()
			overlaps++
			mu.Unlock()
		case <-time.After(3 * time.Second):
		}
	}
	sim.mu.Unlock()
	stopA()
	mu.Lock()
	defer mu.Unlock()
	if started != 2 || overlaps != 2 {
		t.Fatalf("release hooks: %d started, %d ran while the other had started (want 2, 2): %v", started, overlaps, sim.records())
	}
}
