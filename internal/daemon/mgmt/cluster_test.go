package mgmt

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/stmf"
)

// fakeCluster records the calls the management plane makes.
type fakeCluster struct {
	moved [2]string
}

func (f *fakeCluster) Status(context.Context) (api.ClusterStatus, error) {
	return api.ClusterStatus{Node: "a"}, nil
}

func (f *fakeCluster) MoveLU(_ context.Context, guid, node string) (api.ClusterLU, error) {
	f.moved = [2]string{guid, node}
	return api.ClusterLU{GUID: guid, LUCluster: api.LUCluster{Owner: node}}, nil
}

func (f *fakeCluster) LU(guid string) *api.LUCluster {
	return &api.LUCluster{Owner: "b", Token: 7, States: []api.ClusterNodeState{{Node: "a", Group: 1, State: api.ALUAStandby}}}
}

func TestClusterCalls(t *testing.T) {
	r := newRig(t)
	lu := createLU(t, r, filepath.Join(t.TempDir(), "lu.img"), api.LUProps{})

	// A single node refuses the cluster calls with a clear code.
	if _, err := r.m.ListCluster(bg, api.Empty{}); !api.IsCode(err, api.CodeNotClustered) {
		t.Errorf("list-cluster on a single node: %v", err)
	}
	if _, err := r.m.MoveLU(bg, api.MoveLURequest{GUID: lu.GUID, Node: "b"}); !api.IsCode(err, api.CodeNotClustered) {
		t.Errorf("move-lu on a single node: %v", err)
	}
	if l := must[[]api.LU](t)(r.m.ListLUs(bg, api.Empty{})); l[0].Cluster != nil {
		t.Errorf("single node list-lu has cluster fields: %+v", l[0].Cluster)
	}

	fc := &fakeCluster{}
	r.m.SetCluster(fc)
	for _, tc := range []struct {
		name string
		req  api.MoveLURequest
		code api.Code
	}{
		{"bad GUID", api.MoveLURequest{GUID: "xyz", Node: "b"}, api.CodeInvalidArgument},
		{"unknown LU", api.MoveLURequest{GUID: "600144F0000000000000000000000001", Node: "b"}, api.CodeLUNotFound},
		{"no node", api.MoveLURequest{GUID: lu.GUID}, api.CodeInvalidArgument},
	} {
		if _, err := r.m.MoveLU(bg, tc.req); !api.IsCode(err, tc.code) {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if res, err := r.m.MoveLU(bg, api.MoveLURequest{GUID: lu.GUID, Node: "b"}); err != nil || res.Owner != "b" || fc.moved != [2]string{lu.GUID, "b"} {
		t.Errorf("move-lu: %+v %v (moved %v)", res, err, fc.moved)
	}
	// list-lu shows the owner, and the LU standby when this node does not serve it.
	g, _ := stmf.ParseGUID(lu.GUID)
	_ = r.fw.SetLUAccess(g, &stmf.LUAccess{Local: stmf.ALUAStandby})
	l := must[[]api.LU](t)(r.m.ListLUs(bg, api.Empty{}))
	if l[0].Cluster == nil || l[0].Cluster.Owner != "b" || l[0].AccessState != "Standby" {
		t.Errorf("cluster list-lu: %+v access %s", l[0].Cluster, l[0].AccessState)
	}
	if st, err := r.m.ListCluster(bg, api.Empty{}); err != nil || st.Node != "a" {
		t.Errorf("list-cluster: %+v %v", st, err)
	}
}
