package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/cluster/clustertest"
	"github.com/costar-project/costar/test/harness"
)

// A management change is committed to etcd before it is adopted; with
// etcd gone that Txn waits out its timeout (the lease TTL). Reads must
// not wait behind it: list-lu answers while create-hg is still waiting,
// with the state before the change, and create-hg fails changing nothing.
func TestClusterListLUWhileConfigCommitWaits(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	etcd, err := clustertest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Close)
	// A longer TTL than the other tests': the Txn waits longer, so the
	// order of the two answers does not depend on the machine's load.
	const ttl = 6 * time.Second
	d := suite.Start(ctx, t, t.TempDir(), harness.Options{Cluster: &harness.ClusterNode{
		Endpoints: etcd.Endpoints, Name: "a", ID: 1, LeaseTTL: ttl}})
	guid := d.CreateLU(harness.Backing(t, t.TempDir(), "lu.img", 16<<20))

	etcd.Stop(0)
	type result struct {
		code int
		took time.Duration
	}
	change := make(chan result, 1)
	start := time.Now()
	go func() {
		_, _, code := d.Run("", "stmfadm", "create-hg", "slow")
		change <- result{code, time.Since(start)}
	}()
	time.Sleep(time.Second) // create-hg is in its Txn by now
	out, _, code := d.Run("", "stmfadm", "list-lu")
	read := time.Since(start)
	select {
	case r := <-change:
		t.Fatalf("create-hg ended (exit %d, %v) before list-lu did (%v): list-lu waited for the Txn (or etcd did not hold it)", r.code, r.took, read)
	default:
	}
	if code != 0 || !strings.Contains(out, guid) {
		t.Fatalf("list-lu during the Txn: exit %d\n%s", code, out)
	}
	r := <-change
	t.Logf("list-lu answered %v after create-hg started; create-hg took %v (exit %d)", read.Round(time.Millisecond), r.took.Round(time.Millisecond), r.code)
	if r.code == 0 {
		t.Fatal("create-hg succeeded with etcd down")
	}
	if out := d.OK("stmfadm", "list-hg"); strings.Contains(out, "slow") {
		t.Fatalf("the failed change was adopted:\n%s", out)
	}
}
