package mgmt

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

func TestTargetsRouteByProtocol(t *testing.T) {
	r := newRig(t)
	const iqn = "iqn.2026-11.org.test:t"
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: iqn}))
	fc := must[api.Target](t)(r.m.AddTarget(bg, "fc", "wwn.2100001b32a1b2c3")) // canonical: upper-case hex
	if fc.Name != fcTarget || !fc.Online || fc.Provider != "qlt" || fc.Protocol != "Fibre Channel" ||
		fc.Auth != "" || fc.ChapSecretSet || len(fc.TPGs) != 0 {
		t.Fatalf("FC target: %+v", fc)
	}
	// Each target is served by its own protocol's provider only.
	if _, ok := r.fc.spec(fcTarget); !ok {
		t.Fatal("FC target not served by the fc provider")
	}
	if _, ok := r.ports.spec(fcTarget); ok {
		t.Fatal("FC target served by the iSCSI provider")
	}
	if _, ok := r.fc.spec(iqn); ok {
		t.Fatal("iSCSI target served by the fc provider")
	}
	if s, _ := r.fc.spec(fcTarget); !reflect.DeepEqual(s, TargetSpec{Name: fcTarget}) {
		t.Fatalf("FC spec carries more than the neutral part: %+v", s)
	}

	// One target group holds both, once both are offline (stmfadm's rule).
	must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.TargetGroup, Name: "both"}))
	for _, name := range []string{iqn, fcTarget} {
		_, err := r.m.AddGroupMember(bg, api.MemberRequest{Kind: api.TargetGroup, Group: "both", Member: name})
		wantCode(t, err, api.CodeTargetOnline)
		must[api.Empty](t)(r.m.OfflineTarget(bg, api.NameRequest{Name: name}))
		must[api.Empty](t)(r.m.AddGroupMember(bg, api.MemberRequest{Kind: api.TargetGroup, Group: "both", Member: name}))
	}
	if _, ok := r.fc.spec(fcTarget); ok {
		t.Fatal("offline-target did not reach the fc provider")
	}
	if _, ok := r.ports.spec(iqn); ok {
		t.Fatal("offline-target did not reach the iSCSI provider")
	}
	gs := must[[]api.Group](t)(r.m.ListGroups(bg, api.GroupRequest{Kind: api.TargetGroup}))
	if want := []api.Group{{Name: "both", Members: []string{iqn, fcTarget}}}; !reflect.DeepEqual(gs, want) {
		t.Fatalf("target groups %+v, want %+v", gs, want)
	}
	must[api.Empty](t)(r.m.OnlineTarget(bg, api.NameRequest{Name: "wwn.2100001b32a1b2c3"}))
	if _, ok := r.fc.spec(fcTarget); !ok {
		t.Fatal("online-target did not reach the fc provider")
	}
	must[api.Empty](t)(r.m.OnlineTarget(bg, api.NameRequest{Name: iqn}))

	// A view through the group reaches the LU over both protocols.
	a := createLU(t, r, "/d/a", api.LUProps{})
	addView(t, r, api.AddViewRequest{GUID: a.GUID, TargetGroup: "both", LUN: ptr(3)})
	for _, port := range []struct{ target, name string }{{iqn, iqn + ",t,0x0001"}, {fcTarget, fcTarget}} {
		p, err := r.fw.RegisterPort(stmf.PortSpec{TargetName: port.target, Name: port.name, Group: stmf.DefaultPortGroup})
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.OpenSession(stmf.Initiator{Name: "wwn.2100001B32AABBCC", PortName: "wwn.2100001B32AABBCC"})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.LUNs(); !reflect.DeepEqual(got, []scsi.LUN{3}) {
			t.Errorf("LUNs through %s: %v, want [3]", port.target, got)
		}
		s.Close()
	}

	// list-target shows both with their protocols; the FC target is in
	// the default ALUA target port group.
	ts := must[[]api.Target](t)(r.m.ListTargets(bg, api.Empty{}))
	if len(ts) != 2 || ts[0].Protocol != "iSCSI" || ts[0].Provider != "iscsit" || ts[1].Protocol != "Fibre Channel" {
		t.Fatalf("targets %+v", ts)
	}
	st := must[api.State](t)(r.m.GetState(bg, api.Empty{}))
	if len(st.TargetPortGroups) != 1 || !slices.Equal(st.TargetPortGroups[0].Targets, []string{iqn, fcTarget}) {
		t.Fatalf("target port groups %+v", st.TargetPortGroups)
	}

	// itadm sees only iSCSI targets; the defaults change no FC target.
	_, err := r.m.ModifyTarget(bg, api.TargetRequest{Name: fcTarget, Alias: ptr("x")})
	wantCode(t, err, api.CodeTargetNotFound)
	_, err = r.m.DeleteTarget(bg, api.NameRequest{Name: fcTarget, Force: true})
	wantCode(t, err, api.CodeTargetNotFound)
	updates := r.fc.updates
	must[api.Empty](t)(r.m.ModifyDefaults(bg, api.DefaultsRequest{Auth: ptr("chap")}))
	if r.fc.updates != updates {
		t.Fatal("modify-defaults updated an FC target")
	}
	if la, _ := r.m.LoginAuth("iqn.2026-11.org.test:i", fcTarget, false); !la.Required || la.TargetSecret != "" {
		t.Fatalf("login auth for an FC name: %+v", la)
	}

	// A restart serves each target through its own provider again.
	n := r.restart(t)
	if _, ok := n.fc.spec(fcTarget); !ok {
		t.Fatal("FC target not served after restart")
	}
	if _, ok := n.ports.spec(iqn); !ok {
		t.Fatal("iSCSI target not served after restart")
	}
	if got := must[[]api.Target](t)(n.m.ListTargets(bg, api.Empty{})); !reflect.DeepEqual(got, ts) {
		t.Fatalf("targets after restart:\n got %+v\nwant %+v", got, ts)
	}
}

func TestUnknownProtocolRefused(t *testing.T) {
	r := newRig(t)
	_, err := r.m.AddTarget(bg, "srp", "eui.0123456789ABCDEF")
	wantCode(t, err, api.CodeNotSupported)
	if want := `no port provider is registered for protocol "srp"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to say %q", err, want)
	}
	_, err = r.m.AddTarget(bg, "fc", "wwn.21")
	wantCode(t, err, api.CodeInvalidDeviceID)
	must[api.Target](t)(r.m.AddTarget(bg, "fc", fcTarget))
	_, err = r.m.AddTarget(bg, "fc", fcTarget)
	wantCode(t, err, api.CodeTargetExists)

	// A stored target whose protocol has no provider stays configured,
	// unserved; online/offline of it is refused with the same error.
	next := r.st.saved.Clone()
	next.Targets = append(next.Targets, store.Target{Name: "eui.0123456789ABCDEF", Protocol: "srp", Offline: true})
	r.st.saved = next
	n := r.restart(t)
	ts := must[[]api.Target](t)(n.m.ListTargets(bg, api.Empty{}))
	if len(ts) != 2 || ts[1].Name != "eui.0123456789ABCDEF" || ts[1].Protocol != "srp" || ts[1].Online {
		t.Fatalf("targets %+v", ts)
	}
	_, err = n.m.OnlineTarget(bg, api.NameRequest{Name: "eui.0123456789ABCDEF"})
	wantCode(t, err, api.CodeNotSupported)
	if ts := must[[]api.Target](t)(n.m.ListTargets(bg, api.Empty{})); ts[1].Online {
		t.Fatal("refused online-target changed the state")
	}
}
