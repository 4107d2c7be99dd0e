package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

const (
	iqnA      = "iqn.2026-11.org.costar:cluster-a"
	iqnB      = "iqn.2026-11.org.costar:cluster-b"
	testInit  = "iqn.2026-11.org.costar:cluster-test"
	leaseTTL  = 3 * time.Second
	blockSize = 512
)

// node is one stmfd of the cluster with a session to its target.
type node struct {
	name string
	d    *harness.Daemon
	s    *initiator.Session
}

func listCluster(t *testing.T, d *harness.Daemon) api.ClusterStatus {
	t.Helper()
	var st api.ClusterStatus
	out, errs, code := d.Run("", "stmfadm", "list-cluster", "-o", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("list-cluster -o json (exit %d, %s): %q: %v", code, errs, out, err)
	}
	return st
}

// ownerOf polls list-cluster on d until the LU has an owner (bounded).
func ownerOf(t *testing.T, d *harness.Daemon, guid string, not string) api.ClusterLU {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, l := range listCluster(t, d).LUs {
			if l.GUID == guid && l.Owner != "" && l.Owner != not {
				return l
			}
		}
	}
	t.Fatalf("LU %s has no owner (other than %q) after 30s", guid, not)
	return api.ClusterLU{}
}

// cmd runs one command, skipping unit attentions (at most 8): an ALUA
// change raises ASYMMETRIC ACCESS STATE CHANGED first.
func cmd(ctx context.Context, t *testing.T, s *initiator.Session, cdb, out []byte, readLen uint32) initiator.Response {
	t.Helper()
	var r initiator.Response
	for range 8 {
		r = harness.Do(ctx, t, s, 0, cdb, out, readLen)
		if sn, ok := r.SenseData(); !ok || sn.Key != initiator.KeyUnitAttention {
			return r
		}
	}
	t.Fatalf("CDB % x: unit attentions never cleared", cdb)
	return r
}

func isStandby(r initiator.Response) bool { return r.Is(initiator.KeyNotReady, 0x04, 0x0b) }

func rtpg(ctx context.Context, t *testing.T, s *initiator.Session) map[uint16]byte {
	t.Helper()
	return rtpgPorts(ctx, t, s).states // portals_test.go
}

func pattern(seed byte) []byte {
	b := make([]byte, blockSize)
	for i := range b {
		b[i] = seed ^ byte(i)
	}
	return b
}

// Two nodes, one shared LU: the owner serves, the other answers standby
// with RTPG showing the whole cluster; move-lu switches over; SIGKILL of
// the owner fails over; losing the etcd majority self-fences.
func TestClusterOwnershipFailover(t *testing.T) {
	ctx := harness.Context(t, 4*time.Minute)
	n := startTwoNodes(ctx, t, 3, 64<<20)
	etcd, da, db, guid := n.etcd, n.a, n.b, n.guid
	// The configuration lives in etcd: node b saw the LU and its view
	// created on a without being told (startTwoNodes), and a change on b
	// reaches a.
	db.OK("stmfadm", "create-hg", "esx")
	waitFor(t, "node a has the host group created on node b", func() bool {
		out, _, _ := da.Run("", "stmfadm", "list-hg")
		return strings.Contains(out, "Host Group: esx")
	})
	// Node b's own portal group (tag 2: target port group ids are unique
	// across the cluster); targets are per node.
	portalB := n.targetOnB(t)

	nodes := map[string]*node{"a": {name: "a", d: da}, "b": {name: "b", d: db}}
	nodes["a"].s = harness.Login(ctx, t, da.Portal, iqnA, testInit, 1)
	nodes["b"].s = harness.Login(ctx, t, portalB, iqnB, testInit, 2)
	groupOf := map[string]uint16{"a": 1, "b": 2}

	own := ownerOf(t, da, guid, "")
	owner, other := nodes[own.Owner], nodes[map[string]string{"a": "b", "b": "a"}[own.Owner]]
	t.Logf("owner %s, fencing token %d", owner.name, own.Token)

	// Wait until both nodes report the same picture in RTPG (the
	// non-owner learns the owner within a refresh).
	want := map[uint16]byte{groupOf[owner.name]: 0, groupOf[other.name]: 2}
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ga, gb := rtpg(ctx, t, owner.s), rtpg(ctx, t, other.s)
		if equalStates(ga, want) && equalStates(gb, want) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("RTPG owner %v, other %v; want %v on both", ga, gb, want)
		}
	}
	// Standby on the non-owner: media access refused, INQUIRY served.
	if r := cmd(ctx, t, other.s, initiator.Write16(8, 1), pattern(1), 0); !isStandby(r) {
		t.Fatalf("WRITE on the non-owner: %v, want NOT READY / TARGET PORT IN STANDBY STATE", r)
	}
	if r := cmd(ctx, t, other.s, initiator.Inquiry(true, 0x83, 255), nil, 255); r.Status != initiator.StatusGood {
		t.Fatalf("INQUIRY on the non-owner: %v", r)
	}
	if r := cmd(ctx, t, owner.s, initiator.Write16(8, 1), pattern(1), 0); r.Status != initiator.StatusGood {
		t.Fatalf("WRITE on the owner: %v", r)
	}
	if v := listLUVerbose(t, other.d, guid); !bytes.Contains(v, []byte("Owner")) || !bytes.Contains(v, []byte(owner.name)) {
		t.Errorf("list-lu -v on the non-owner does not name the owner:\n%s", v)
	}

	// Planned switchover, asked on the node that does not own the LU.
	other.d.OK("stmfadm", "move-lu", guid, other.name)
	owner, other = other, owner
	if r := cmd(ctx, t, owner.s, initiator.Read16(8, 1), nil, blockSize); r.Status != initiator.StatusGood || !bytes.Equal(r.Data, pattern(1)) {
		t.Fatalf("READ on the new owner after move-lu: %v (data equal %v)", r, bytes.Equal(r.Data, pattern(1)))
	}
	if r := cmd(ctx, t, other.s, initiator.Write16(8, 1), pattern(2), 0); !isStandby(r) {
		t.Fatalf("WRITE on the old owner after move-lu: %v, want standby", r)
	}
	moved := ownerOf(t, da, guid, "")
	if moved.Owner != owner.name || moved.Token <= own.Token {
		t.Fatalf("after move-lu: owner %s token %d (before %s %d)", moved.Owner, moved.Token, own.Owner, own.Token)
	}

	// SIGKILL of the owner: the other node takes over once the lease is
	// gone. The failover time is logged, not asserted.
	if r := cmd(ctx, t, owner.s, initiator.Write16(16, 1), pattern(3), 0); r.Status != initiator.StatusGood {
		t.Fatalf("WRITE before the kill: %v", r)
	}
	killed := time.Now()
	owner.d.Kill()
	var took time.Duration
	for end := killed.Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := cmd(ctx, t, other.s, initiator.Write16(24, 1), pattern(4), 0)
		if r.Status == initiator.StatusGood {
			took = time.Since(killed)
			break
		}
		if !isStandby(r) {
			t.Fatalf("WRITE during failover: %v, want standby until the takeover", r)
		}
		if time.Now().After(end) {
			t.Fatal("no takeover within 30s of the owner's SIGKILL")
		}
	}
	t.Logf("failover: SIGKILL to first GOOD write through the other node: %v (lease TTL %v)", took.Round(time.Millisecond), leaseTTL)
	if r := cmd(ctx, t, other.s, initiator.Read16(16, 1), nil, blockSize); !bytes.Equal(r.Data, pattern(3)) {
		t.Fatalf("the dead owner's last write is not on the shared store: %v", r)
	}
	after := ownerOf(t, other.d, guid, owner.name)
	if after.Owner != other.name || after.Token <= moved.Token {
		t.Fatalf("after the kill: owner %s token %d", after.Owner, after.Token)
	}

	// etcd: one member lost keeps the majority (nothing changes); two
	// lost and the owner self-fences; back, and it serves again.
	etcd.Stop(0)
	for range 3 * int(leaseTTL/(200*time.Millisecond)) / 2 { // 1.5 TTLs of renewals
		if r := cmd(ctx, t, other.s, initiator.Write16(32, 1), pattern(5), 0); r.Status != initiator.StatusGood {
			t.Fatalf("WRITE with one etcd member down: %v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	etcd.Stop(1)
	for end := time.Now().Add(3 * leaseTTL); ; time.Sleep(50 * time.Millisecond) {
		r := cmd(ctx, t, other.s, initiator.Write16(32, 1), pattern(6), 0)
		if isStandby(r) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("still serving %v after 3 TTLs without an etcd majority", r)
		}
	}
	for range 10 {
		if r := cmd(ctx, t, other.s, initiator.Write16(32, 1), pattern(6), 0); !isStandby(r) {
			t.Fatalf("served %v without an etcd majority", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := etcd.Restart(1); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if r := cmd(ctx, t, other.s, initiator.Write16(32, 1), pattern(7), 0); r.Status == initiator.StatusGood {
			break
		}
		if time.Now().After(end) {
			t.Fatal("not serving again 30s after the etcd majority came back")
		}
	}
}

// waitFor polls cond every 100ms for at most 20s (a bound, not a timing
// assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within 20s: %s", what)
}

func equalStates(a, b map[uint16]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if w, ok := a[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func listLUVerbose(t *testing.T, d *harness.Daemon, guid string) []byte {
	t.Helper()
	return []byte(d.OK("stmfadm", "list-lu", "-v", guid))
}
