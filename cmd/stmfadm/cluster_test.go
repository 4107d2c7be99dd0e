package main

import (
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/apitest"
)

const testGUID = "600144F034E37C2100006B0FCAD55776"

func TestListCluster(t *testing.T) {
	st := api.ClusterStatus{Node: "a", Endpoints: []string{"http://127.0.0.1:2379"}, LeaseTTL: 5, RenewEvery: 1, FenceMargin: 1, EtcdHealthy: true,
		Members: []api.ClusterMember{{Name: "a", Self: true, Portals: []string{"127.0.0.1:3260"}, Groups: []api.ClusterPortGroup{{ID: 1, Ports: []uint16{256}}}, Health: "ok", LeaseTTL: 4},
			{Name: "b", Portals: []string{"127.0.0.2:3260"}, Groups: []api.ClusterPortGroup{{ID: 2, Ports: []uint16{512}, Portals: []string{"127.0.0.2:3260", "127.0.0.6:3260"}}}, Health: "ok", LeaseTTL: 3}},
		LUs: []api.ClusterLU{{GUID: testGUID, LUCluster: api.LUCluster{Owner: "b", Token: 42, LeaseTTL: 4,
			States: []api.ClusterNodeState{{Node: "a", Group: 1, State: api.ALUAStandby}, {Node: "b", Group: 2, State: api.ALUAActiveOptimized}}}}}}
	srv := apitest.Serve(t, map[string]apitest.Reply{api.MethodListCluster: {Body: st}})
	code, out, errs := runCLI(t, srv.Socket, "stmfadm", "list-cluster")
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"Node: a", "Member: a (this node)", "Port Group 1 : ports 256", "Member: b",
		"Port Group 2 : ports 512; portals 127.0.0.2:3260,127.0.0.6:3260",
		"LU Name: " + testGUID, "Owner : b", "Fencing Token : 42", "ALUA a : group 1 Standby", "ALUA b : group 2 Active/Optimized",
		"Lease TTL : 5s (renewed every 1s, self-fence 1s before expiry)"} {
		if !strings.Contains(flat, want) {
			t.Errorf("list-cluster lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, srv.Socket, "stmfadm", "list-cluster", "-o", "json")
	if code != exitOK || !strings.Contains(out, `"token": 42`) {
		t.Errorf("list-cluster -o json: exit %d\n%s", code, out)
	}

	// etcd unreachable: the last view, and exit 1 with the reason.
	st.EtcdHealthy, st.EtcdProblem = false, "context deadline exceeded"
	srv = apitest.Serve(t, map[string]apitest.Reply{api.MethodListCluster: {Body: st}})
	if code, _, errs := runCLI(t, srv.Socket, "stmfadm", "list-cluster"); code != exitFail || !strings.Contains(errs, "etcd did not answer (context deadline exceeded)") {
		t.Errorf("etcd down: exit %d, stderr %q", code, errs)
	}
	// A single node says so.
	srv = apitest.Serve(t, map[string]apitest.Reply{api.MethodListCluster: {Err: &api.Error{Code: api.CodeNotClustered, Message: "stmfd runs as a single node"}}})
	if code, _, errs := runCLI(t, srv.Socket, "stmfadm", "list-cluster"); code != exitFail || !strings.Contains(errs, "single node") {
		t.Errorf("single node: exit %d, stderr %q", code, errs)
	}
}

func TestMoveLU(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		reply  apitest.Reply
		code   int
		stdout string
		stderr string
	}{
		{"moved", []string{testGUID, "b"}, apitest.Reply{Body: api.ClusterLU{GUID: testGUID, LUCluster: api.LUCluster{Owner: "b", Token: 9}}},
			exitOK, "LU " + testGUID + " is now served by b (fencing token 9)\n", ""},
		{"no such node", []string{testGUID, "zz"}, apitest.Reply{Err: &api.Error{Code: api.CodeNoSuchNode, Message: "not a live member"}},
			exitFail, "", "stmfadm: zz: not a live cluster member (stmfadm list-cluster)\n"},
		{"no such LU", []string{testGUID, "b"}, apitest.Reply{Err: &api.Error{Code: api.CodeLUNotFound, Message: "no such LU"}},
			exitFail, "", "stmfadm: " + testGUID + ": no such logical unit\n"},
		{"one operand", []string{testGUID}, apitest.Reply{}, exitUsage, "", "stmfadm: move-lu: operand required: lu-name node\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := apitest.Serve(t, map[string]apitest.Reply{api.MethodMoveLU: tc.reply})
			code, out, errs := runCLI(t, srv.Socket, append([]string{"stmfadm", "move-lu"}, tc.args...)...)
			if code != tc.code || out != tc.stdout || errs != tc.stderr {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out, errs, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}
