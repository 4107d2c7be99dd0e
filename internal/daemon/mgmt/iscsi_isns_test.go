package mgmt

import (
	"reflect"
	"testing"

	"github.com/costar-project/costar/api"
)

// TestISNSView: the iSNS client sees the online iSCSI targets with their
// portal groups only while iSNS is enabled with a server, and is told of
// every change.
func TestISNSView(t *testing.T) {
	r := newRig(t)
	changes := 0
	r.m.changed = func() { changes++ }
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.org.test:a", Alias: ptr("alpha")}))
	must[api.Empty](t)(r.m.CreateTPG(bg, api.TPG{Name: "fast", Portals: []string{"127.0.0.2:3261"}}))
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.org.test:b", TPGs: ptr([]string{"fast"})}))
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.org.test:off"}))
	must[api.Empty](t)(r.m.OfflineTarget(bg, api.NameRequest{Name: "iqn.2026-11.org.test:off"}))
	if changes != 5 {
		t.Fatalf("%d change notifications for 5 changes", changes)
	}
	online := []ISNSTarget{
		{Name: "iqn.2026-11.org.test:a", Alias: "alpha"},
		{Name: "iqn.2026-11.org.test:b", PortalGroups: []PortalGroup{{Name: "fast", Tag: 2, Portals: []string{"127.0.0.2:3261"}}}},
	}
	steps := []struct {
		name string
		req  api.DefaultsRequest
		want ISNSView
	}{
		{"enabled without a server", api.DefaultsRequest{ISNS: ptr(true)}, ISNSView{Servers: []string{}, Targets: online}},
		{"enabled with a server", api.DefaultsRequest{ISNSServers: ptr([]string{"127.0.0.1"})}, ISNSView{Enabled: true, Servers: []string{"127.0.0.1:3205"},
			Targets: online}},
		{"disabled", api.DefaultsRequest{ISNS: ptr(false)}, ISNSView{Servers: []string{"127.0.0.1:3205"},
			Targets: online}},
	}
	for _, s := range steps {
		must[api.Empty](t)(r.m.ModifyDefaults(bg, s.req))
		got := r.m.ISNSView()
		if got.Servers == nil {
			got.Servers = []string{}
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: view %+v, want %+v", s.name, got, s.want)
		}
	}
}
