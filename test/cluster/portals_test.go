package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// Two nodes with two portals each: node a serves iqnA on its default
// portal group (two --portal flags, tag 1), node b serves iqnB on a portal
// group itadm creates after start with two portals (tag 2). list-cluster
// shows each group with the portals that listen for it; a login through
// each of the four portals works, READ answers GOOD through the owner's
// two and NOT READY / TARGET PORT IN STANDBY STATE through the other's;
// RTPG through every path lists both nodes' groups, one relative port
// each (an iSCSI target port is target name + portal group tag: two
// portals of one group are two paths to one port).
func TestClusterTwoPortalsPerNode(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	harness.FreePortOn(t, "127.0.0.5") // skips when the loopback address is missing
	n := startTwoNodesArgs(ctx, t, 1, 16<<20, []string{"--portal", "127.0.0.5:0"})
	da, db, guid := n.a, n.b, n.guid

	var st api.State
	if err := json.Unmarshal([]byte(da.OK("stmfadm", "list-state", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	portalsA := slices.Sorted(slices.Values(st.Portals))
	if len(portalsA) != 2 {
		t.Fatalf("node a listens on %v, want two portals", st.Portals)
	}
	portalsB := []string{"127.0.0.2:" + harness.FreePortOn(t, "127.0.0.2"), "127.0.0.6:" + harness.FreePortOn(t, "127.0.0.6")}
	n.targetOnB(t, portalsB...)
	portals := map[string][]string{"a": portalsA, "b": portalsB}
	groupOf := map[string]uint16{"a": 1, "b": 2}

	// Both nodes' list-cluster show each node's group with its two
	// portals (b's group appeared after b joined) and one port.
	var last api.ClusterStatus
	waitFor(t, "list-cluster shows each node's group with its two portals", func() bool {
		for _, d := range []*harness.Daemon{da, db} {
			last = listCluster(t, d)
			if len(last.Members) != 2 {
				return false
			}
			for _, m := range last.Members {
				if len(m.Groups) != 1 || m.Groups[0].ID != groupOf[m.Name] || len(m.Groups[0].Ports) != 1 ||
					!slices.Equal(m.Groups[0].Portals, portals[m.Name]) {
					return false
				}
				for _, p := range portals[m.Name] {
					if !slices.Contains(m.Portals, p) {
						return false
					}
				}
			}
		}
		return true
	})
	ports := map[string]uint16{}
	for _, m := range last.Members {
		ports[m.Name] = m.Groups[0].Ports[0]
	}
	flat := strings.Join(strings.Fields(da.OK("stmfadm", "list-cluster")), " ")
	for _, name := range []string{"a", "b"} {
		want := fmt.Sprintf("Port Group %d : ports %d; portals %s", groupOf[name], ports[name], strings.Join(portals[name], ","))
		if !strings.Contains(flat, want) {
			t.Errorf("list-cluster lacks %q:\n%s", want, flat)
		}
	}

	// A session through every portal.
	iqn := map[string]string{"a": iqnA, "b": iqnB}
	type path struct {
		node, portal string
		s            *initiator.Session
	}
	var paths []path
	for _, name := range []string{"a", "b"} {
		for _, p := range portals[name] {
			paths = append(paths, path{name, p, harness.Login(ctx, t, p, iqn[name], testInit, byte(1+len(paths)))})
		}
	}

	owner := ownerOf(t, da, guid, "").Owner
	state := func(node string) byte {
		if node == owner {
			return 0
		}
		return 2
	}
	want := map[uint16]byte{groupOf["a"]: state("a"), groupOf["b"]: state("b")}
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		bad := ""
		for _, p := range paths {
			if got := rtpgPorts(ctx, t, p.s); !equalStates(got.states, want) ||
				!slices.Equal(got.ports[1], []uint16{ports["a"]}) || !slices.Equal(got.ports[2], []uint16{ports["b"]}) {
				bad = fmt.Sprintf("RTPG via %s (node %s): states %v ports %v; want %v, ports a %d b %d", p.portal, p.node, got.states, got.ports, want, ports["a"], ports["b"])
				break
			}
		}
		if bad == "" {
			break
		}
		if time.Now().After(end) {
			t.Fatal(bad)
		}
	}
	for _, p := range paths {
		r := cmd(ctx, t, p.s, initiator.Read16(0, 1), nil, blockSize)
		switch {
		case p.node == owner && r.Status != initiator.StatusGood:
			t.Errorf("READ via the owner's portal %s: %v, want GOOD", p.portal, r)
		case p.node != owner && !isStandby(r):
			t.Errorf("READ via the standby's portal %s: %v, want NOT READY 04h/0Bh", p.portal, r)
		}
	}
}

type rtpgAnswer struct {
	states map[uint16]byte
	ports  map[uint16][]uint16
}

func rtpgPorts(ctx context.Context, t *testing.T, s *initiator.Session) rtpgAnswer {
	t.Helper()
	r := cmd(ctx, t, s, initiator.ReportTargetPortGroups(4096), nil, 4096)
	if r.Status != initiator.StatusGood {
		t.Fatalf("RTPG: %v", r)
	}
	groups, err := initiator.ParseTargetPortGroups(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	out := rtpgAnswer{states: map[uint16]byte{}, ports: map[uint16][]uint16{}}
	for _, g := range groups {
		out.states[g.Group] = g.State
		out.ports[g.Group] = slices.Sorted(slices.Values(g.Ports))
	}
	return out
}
