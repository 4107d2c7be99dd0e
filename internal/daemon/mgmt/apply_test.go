package mgmt

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

const (
	guidA = "600144F0AABBCCDD0000000000000001"
	guidB = "600144F0AABBCCDD0000000000000002"
	guidC = "600144F0AABBCCDD0000000000000003"
	guidD = "600144F0AABBCCDD0000000000000004"
	guidX = "600144F0AABBCCDD0000000000000009"
	tgt1  = "iqn.2026-12.test:t1"
	tgt2  = "iqn.2026-12.test:t2"
	tgt3  = "iqn.2026-12.test:t3"
	ini1  = "iqn.2026-12.test:ini1"
	ini2  = "iqn.2026-12.test:ini2"
)

// applyBase builds the configuration every apply test starts from: two
// LUs, a host group with a member and a view, an empty target group, two
// targets, a portal group and an initiator with CHAP.
func applyBase(t *testing.T) *rig {
	t.Helper()
	r := newRig(t)
	createLU(t, r, "/d/a", api.LUProps{GUID: guidA, Alias: ptr("a")})
	createLU(t, r, "/d/b", api.LUProps{GUID: guidB})
	must[api.Empty](t)(r.m.CreateTPG(bg, api.TPG{Name: "tpgA", Portals: []string{"127.0.0.1:3261"}}))
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: tgt1}))
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: tgt2, TPGs: &[]string{"tpgA"}}))
	must[api.Empty](t)(r.m.CreateInitiator(bg, api.InitiatorRequest{Name: ini1, ChapUser: ptr("u1"), ChapSecret: ptr("secret-of-ini1")}))
	must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.HostGroup, Name: "esx"}))
	must[api.Empty](t)(r.m.AddGroupMember(bg, api.MemberRequest{Kind: api.HostGroup, Group: "esx", Member: ini1}))
	must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.TargetGroup, Name: "tg1"}))
	addView(t, r, api.AddViewRequest{GUID: guidA, HostGroup: "esx", LUN: ptr(3)})
	// A backing store stmfd does not have yet, for import.
	r.lus.files["/d/c"] = LUInfo{GUID: mustGUID(t, guidC), DataFile: "/d/c", Size: 1 << 20, BlockSize: 512, VID: "COSTAR", PID: "COMSTAR"}
	return r
}

func mustGUID(t *testing.T, s string) stmf.GUID {
	t.Helper()
	g, err := stmf.ParseGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func export(t *testing.T, r *rig) api.ExportResult {
	t.Helper()
	return must[api.ExportResult](t)(r.m.ExportConfig(bg, api.Empty{}))
}

func cloneConfig(t *testing.T, c api.Config) api.Config {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var out api.Config
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func luIndex(c *api.Config, guid string) *api.ConfigLU {
	for i := range c.LUs {
		if c.LUs[i].GUID == guid {
			return &c.LUs[i]
		}
	}
	return nil
}

func TestApplyPlans(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *api.Config)
		prune  bool
		want   []string
		code   api.Code // a refused plan
	}{
		{name: "no change", change: func(*api.Config) {}},
		{name: "new host group with a member", change: func(c *api.Config) {
			c.HostGroups = append(c.HostGroups, api.ConfigGroup{Name: "dev", Members: []string{ini2}})
		}, want: []string{"stmfadm create-hg dev", "stmfadm add-hg-member -g dev " + ini2}},
		{name: "member moves: leaves its group first", change: func(c *api.Config) {
			c.HostGroups = []api.ConfigGroup{{Name: "dev", Members: []string{ini1}}, {Name: "esx", Members: []string{}}}
		}, want: []string{"stmfadm create-hg dev", "stmfadm remove-hg-member -g esx " + ini1, "stmfadm add-hg-member -g dev " + ini1}},
		{name: "target group change takes the target offline and back", change: func(c *api.Config) {
			c.TargetGroups[0].Members = []string{tgt1}
		}, want: []string{"stmfadm offline-target " + tgt1, "stmfadm add-tg-member -g tg1 " + tgt1, "stmfadm online-target " + tgt1}},
		{name: "target group change of an offline target", change: func(c *api.Config) {
			c.TargetGroups[0].Members = []string{tgt1}
			c.Targets[0].Offline = true
		}, want: []string{"stmfadm offline-target " + tgt1, "stmfadm add-tg-member -g tg1 " + tgt1}},
		{name: "view moves to another LUN", change: func(c *api.Config) {
			c.Views[0].LUN = 4
		}, want: []string{"stmfadm remove-view -l " + guidA + " 0", "stmfadm add-view -h esx -n 4 " + guidA}},
		{name: "new view with its LUN", change: func(c *api.Config) {
			c.Views = append(c.Views, api.ConfigView{GUID: guidB, LUN: 7})
		}, want: []string{"stmfadm add-view -n 7 " + guidB}},
		{name: "LU properties", change: func(c *api.Config) {
			luIndex(c, guidA).Alias = "x"
			luIndex(c, guidA).WCD = true
		}, want: []string{"stmfadm modify-lu -p alias=x -p wcd=true " + guidA}},
		{name: "LU QoS limits", change: func(c *api.Config) {
			luIndex(c, guidA).QoSIOPS = 2000
			luIndex(c, guidA).QoSMBps = 100
		}, want: []string{"stmfadm modify-lu -p qos-iops=2000 -p qos-mbps=100 " + guidA}},
		{name: "LU imported with QoS limits", change: func(c *api.Config) {
			c.LUs = append(c.LUs, api.ConfigLU{GUID: guidC, DataFile: "/d/c", QoSIOPS: 500})
		}, want: []string{"stmfadm import-lu /d/c", "stmfadm modify-lu -p qos-iops=500 " + guidC + " (where the imported LU differs)"}},
		{name: "LU grows", change: func(c *api.Config) {
			luIndex(c, guidA).Size = 2 << 20
		}, want: []string{"stmfadm modify-lu -s 2097152 " + guidA}},
		{name: "LU offline", change: func(c *api.Config) {
			luIndex(c, guidB).Offline = true
		}, want: []string{"stmfadm offline-lu " + guidB}},
		{name: "LU imported", change: func(c *api.Config) {
			c.LUs = append(c.LUs, api.ConfigLU{GUID: guidC, DataFile: "/d/c"})
		}, want: []string{"stmfadm import-lu /d/c"}},
		{name: "LU created only when the file says so", change: func(c *api.Config) {
			c.LUs = append(c.LUs, api.ConfigLU{GUID: guidD, DataFile: "/d/d", Create: true, Size: 1 << 20, Alias: "new"})
		}, want: []string{"stmfadm create-lu -p guid=" + guidD + " -p alias=new -s 1048576 /d/d"}},
		{name: "targets", change: func(c *api.Config) {
			c.Targets[1].Alias = "two"
			c.Targets = append(c.Targets, api.ConfigTarget{Name: tgt3, TPGs: []api.TPGTag{{TPG: "tpgA", Tag: 2}}})
		}, want: []string{"itadm modify-target -l two " + tgt2, "itadm create-target -t tpgA -n " + tgt3}},
		{name: "initiators and secrets by reference", change: func(c *api.Config) {
			c.Initiators[0].ChapUser = "u2"
			c.Initiators = append(c.Initiators, api.ConfigInitiator{Name: ini2, ChapSecretRef: "s2"})
		}, want: []string{"itadm modify-initiator -u u2 " + ini1, "itadm create-initiator -s (secret s2) " + ini2}},
		{name: "defaults", change: func(c *api.Config) {
			c.Defaults.Auth = "chap"
			c.Defaults.ISNSServers = []string{"127.0.0.1"}
		}, want: []string{"itadm modify-defaults -a chap -I 127.0.0.1:3205"}},
		{name: "portal group", change: func(c *api.Config) {
			c.TPGs = append(c.TPGs, api.ConfigTPG{Name: "tpgB", Portals: []string{"127.0.0.2"}})
		}, want: []string{"itadm create-tpg tpgB 127.0.0.2:3260"}},
		{name: "ALUA", change: func(c *api.Config) {
			c.ALUA = []api.ConfigALUA{{Tag: 1, State: "standby"}}
		}, want: []string{"stmfadm set-alua-state -g 1 standby"}},
		{name: "omitted objects stay without prune", change: func(c *api.Config) {
			c.LUs = c.LUs[:1]
			c.TargetGroups = nil
			c.Targets = c.Targets[:1]
			c.HostGroups[0].Members = []string{}
		}},
		{name: "prune deletes what the file omits", prune: true, change: func(c *api.Config) {
			c.LUs = c.LUs[:1]
			c.TargetGroups = nil
			c.Targets = c.Targets[:1]
			c.HostGroups[0].Members = []string{}
			c.Initiators = nil
		}, want: []string{"stmfadm remove-hg-member -g esx " + ini1, "stmfadm delete-lu -k " + guidB, "stmfadm delete-tg tg1",
			"itadm delete-target -f " + tgt2, "itadm delete-initiator " + ini1}},

		{name: "an LU is never moved", code: api.CodeInvalidArgument, change: func(c *api.Config) { luIndex(c, guidA).DataFile = "/d/z" }},
		{name: "an LU is never shrunk", code: api.CodeInvalidSize, change: func(c *api.Config) { luIndex(c, guidA).Size = 512 }},
		{name: "create-only property", code: api.CodePropNotModify, change: func(c *api.Config) { luIndex(c, guidA).VID = "OTHER" }},
		{name: "view of an unknown group", code: api.CodeInvalidHostGroup, change: func(c *api.Config) { c.Views[0].HostGroup = "nope" }},
		{name: "view of a pruned group", code: api.CodeInvalidTgtGroup, prune: true, change: func(c *api.Config) {
			c.TargetGroups = nil
			c.Views = append(c.Views, api.ConfigView{GUID: guidB, TargetGroup: "tg1", LUN: 1})
		}},
		{name: "one group per member", code: api.CodeMemberExists, change: func(c *api.Config) {
			c.HostGroups = append(c.HostGroups, api.ConfigGroup{Name: "dev", Members: []string{ini1}})
		}},
		{name: "secret missing from the secrets file", code: api.CodeInvalidArgument, change: func(c *api.Config) {
			c.Initiators = append(c.Initiators, api.ConfigInitiator{Name: ini2, ChapSecretRef: "unknown"})
		}},
		{name: "portal group tag that cannot be honoured", code: api.CodeInvalidArgument, change: func(c *api.Config) {
			c.Targets = append(c.Targets, api.ConfigTarget{Name: tgt3, TPGs: []api.TPGTag{{TPG: "tpgA", Tag: 9}}})
		}},
		{name: "LUN taken by another LU in an overlapping map", code: api.CodeLUNInUse, change: func(c *api.Config) {
			c.Views = append(c.Views, api.ConfigView{GUID: guidB, LUN: 3})
		}},
		{name: "views of one LU overlap", code: api.CodeViewConflict, change: func(c *api.Config) {
			c.Views = append(c.Views, api.ConfigView{GUID: guidA, TargetGroup: "tg1", LUN: 6})
		}},
		{name: "a LUN freed and taken in one apply", change: func(c *api.Config) {
			c.Views[0].LUN = 4
			c.Views = append(c.Views, api.ConfigView{GUID: guidB, HostGroup: "esx", LUN: 3})
		}, want: []string{"stmfadm remove-view -l " + guidA + " 0", "stmfadm add-view -h esx -n 4 " + guidA, "stmfadm add-view -h esx -n 3 " + guidB}},
		{name: "LUN out of range", code: api.CodeInvalidLUN, change: func(c *api.Config) { c.Views[0].LUN = 16384 }},
		{name: "unknown version", code: api.CodeInvalidArgument, change: func(c *api.Config) { c.Version = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := applyBase(t)
			base := export(t, r)
			c := cloneConfig(t, base.Config)
			tc.change(&c)
			req := api.ApplyRequest{Config: c, Prune: tc.prune, DryRun: true, Secrets: map[string]string{"s2": "secret-of-ini2"}}
			res, err := r.m.ApplyConfig(bg, req)
			if tc.code != "" {
				wantCode(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Steps, tc.want) && len(res.Steps)+len(tc.want) > 0 {
				t.Fatalf("plan:\n%q\nwant:\n%q", res.Steps, tc.want)
			}
			if res.Generation != base.Generation {
				t.Fatalf("plan from generation %s, export said %s", res.Generation, base.Generation)
			}
			// The plan runs, and a second apply has nothing left to do.
			req.DryRun = false
			res = must[api.ApplyResult](t)(r.m.ApplyConfig(bg, req))
			if res.Applied != (len(tc.want) > 0) {
				t.Fatalf("applied %v with %d steps", res.Applied, len(res.Steps))
			}
			again := must[api.ApplyResult](t)(r.m.ApplyConfig(bg, req))
			if len(again.Steps) != 0 || again.Applied {
				t.Fatalf("second apply is not a no-op: %q", again.Steps)
			}
			if len(tc.want) == 0 && export(t, r).Generation != base.Generation {
				t.Fatal("an empty plan changed the configuration")
			}
		})
	}
}

// TestApplyFailureRollsBack: a step failing late (an import) undoes every
// step before it, live and stored; the state is not saved.
func TestApplyFailureRollsBack(t *testing.T) {
	r := applyBase(t)
	base := export(t, r)
	saves := r.st.saves
	r.lus.failOn["/d/bad"] = ErrDataFile
	c := cloneConfig(t, base.Config)
	c.HostGroups = append(c.HostGroups, api.ConfigGroup{Name: "dev", Members: []string{ini2}})
	c.TargetGroups[0].Members = []string{tgt1}
	luIndex(&c, guidA).Alias = "changed"
	luIndex(&c, guidA).QoSIOPS = 1234
	c.Views[0].LUN = 9
	c.LUs = append(c.LUs, api.ConfigLU{GUID: guidC, DataFile: "/d/c"}, api.ConfigLU{GUID: guidX, DataFile: "/d/bad"})
	c.Initiators[0].ChapUser = "other"
	res, err := r.m.ApplyConfig(bg, api.ApplyRequest{Config: c})
	wantCode(t, err, api.CodeDataFile)
	if len(res.Steps) < 8 {
		t.Fatalf("the plan should have run several steps before the failing one: %q", res.Steps)
	}
	if r.st.saves != saves {
		t.Fatalf("state saved %d times during a failed apply", r.st.saves-saves)
	}
	after := export(t, r)
	if !reflect.DeepEqual(after, base) {
		t.Fatalf("configuration after rollback:\n%+v\nwant:\n%+v", after.Config, base.Config)
	}
	// Live state too: the QoS limit is off again, t1 is served again, the
	// groups and the imported LU are gone.
	if g, _ := stmf.ParseGUID(guidA); r.fw.QoS(g) != (stmf.QoSLimits{}) {
		t.Fatalf("QoS limits after rollback: %+v", r.fw.QoS(g))
	}
	if _, ok := r.ports.spec(tgt1); !ok {
		t.Fatal("target t1 not served after the rollback")
	}
	if err := r.fw.CreateHostGroup("dev"); err != nil {
		t.Fatalf("host group dev still live after the rollback: %v", err)
	}
	if err := r.fw.DeleteHostGroup("dev"); err != nil {
		t.Fatal(err)
	}
	if err := r.fw.RemoveTargetGroupMember("tg1", tgt1); err == nil {
		t.Fatal("t1 still a live member of tg1 after the rollback")
	}
	if r.lus.open["/d/c"] == nil || !r.lus.open["/d/c"].closed {
		t.Fatal("the LU imported by the failed apply was not closed")
	}
	// And the same apply, once the store is fixed, goes through.
	delete(r.lus.failOn, "/d/bad")
	r.lus.files["/d/bad"] = LUInfo{GUID: mustGUID(t, guidX), DataFile: "/d/bad", Size: 1 << 20, BlockSize: 512}
	if _, err := r.m.ApplyConfig(bg, api.ApplyRequest{Config: c}); err != nil {
		t.Fatal(err)
	}
}

// TestApplySaveFailureRollsBack: when the final save fails, every step is
// undone.
func TestApplySaveFailureRollsBack(t *testing.T) {
	r := applyBase(t)
	base := export(t, r)
	c := cloneConfig(t, base.Config)
	c.HostGroups = append(c.HostGroups, api.ConfigGroup{Name: "dev", Members: []string{ini2}})
	luIndex(&c, guidB).WP = true
	r.st.setFail(true)
	_, err := r.m.ApplyConfig(bg, api.ApplyRequest{Config: c})
	wantCode(t, err, api.CodeInternal)
	r.st.setFail(false)
	if after := export(t, r); !reflect.DeepEqual(after, base) {
		t.Fatalf("configuration after a failed save:\n%+v", after.Config)
	}
}

// TestApplyRefusesChangedState: a plan carries the generation it was
// computed from; a change in between (a verb, or an LU property, which is
// not in the state file) makes apply refuse and change nothing.
func TestApplyRefusesChangedState(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(r *rig)
	}{
		{"create-hg", func(r *rig) {
			must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.HostGroup, Name: "meanwhile"}))
		}},
		{"modify-lu", func(r *rig) {
			must[api.LU](t)(r.m.ModifyLU(bg, api.ModifyLURequest{GUID: guidB, Props: api.LUProps{Alias: ptr("meanwhile")}}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := applyBase(t)
			c := cloneConfig(t, export(t, r).Config)
			c.Views[0].LUN = 5
			plan := must[api.ApplyResult](t)(r.m.ApplyConfig(bg, api.ApplyRequest{Config: c, DryRun: true}))
			tc.change(r)
			before := export(t, r)
			_, err := r.m.ApplyConfig(bg, api.ApplyRequest{Config: c, Generation: plan.Generation})
			wantCode(t, err, api.CodeStateChanged)
			if after := export(t, r); !reflect.DeepEqual(after, before) {
				t.Fatal("a refused apply changed the configuration")
			}
		})
	}
}

// TestApplyRoundTrip: what a configuration exports, applied to an empty
// stmfd on the same backing stores, exports the same.
func TestApplyRoundTrip(t *testing.T) {
	r := applyBase(t)
	must[api.ALUAGroup](t)(r.m.SetALUAState(bg, api.SetALUAStateRequest{Tag: 2, State: "standby"}))
	must[api.Empty](t)(r.m.OfflineLU(bg, api.GUIDRequest{GUID: guidB}))
	want := export(t, r)
	fresh := &rig{fw: stmf.New(quietLog()), st: &memStore{}, lus: r.lus, ports: newFakePorts(), fc: newFakePorts()}
	fresh.m = fresh.newManager()
	res := must[api.ApplyResult](t)(fresh.m.ApplyConfig(bg, api.ApplyRequest{Config: want.Config, Secrets: map[string]string{ini1: "secret-of-ini1"}}))
	if !res.Applied {
		t.Fatal("nothing applied")
	}
	if got := export(t, fresh); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n%+v\nwant:\n%+v", got.Config, want.Config)
	}
}

// TestApplyLiveSessions: a live session sees the new map at once.
func TestApplyLiveSessions(t *testing.T) {
	r := applyBase(t)
	p, err := r.fw.RegisterPort(stmf.PortSpec{TargetName: tgt1, Name: tgt1 + ",t,0x0001", Group: stmf.DefaultPortGroup})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.OpenSession(stmf.Initiator{Name: ini1, PortName: ini1 + ",i,0x1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := cloneConfig(t, export(t, r).Config)
	c.Views = append(c.Views, api.ConfigView{GUID: guidB, HostGroup: "esx", LUN: 8})
	must[api.ApplyResult](t)(r.m.ApplyConfig(bg, api.ApplyRequest{Config: c}))
	if got := s.LUNs(); !reflect.DeepEqual(got, []scsi.LUN{3, 8}) {
		t.Fatalf("session LUNs after apply: %v", got)
	}
}

// TestAPISerialised: while an apply is being served, other calls wait
// for it, so nothing slips between its steps; other calls do not wait for
// each other at this gate.
func TestAPISerialised(t *testing.T) {
	r := newRig(t)
	entered := make(chan string, 4)
	gates := map[string]chan struct{}{"1": make(chan struct{}), "2": make(chan struct{})}
	h := r.m.serialised(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		entered <- req.URL.Path
		if g := gates[req.URL.Query().Get("gate")]; g != nil {
			<-g
		}
	}))
	call := func(method, gate string) chan struct{} {
		done := make(chan struct{})
		go func() {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/"+method+"?gate="+gate, nil))
			close(done)
		}()
		return done
	}
	waits := func(what string, done chan struct{}) {
		t.Helper()
		select {
		case <-done:
			t.Fatalf("%s did not wait", what)
		case p := <-entered:
			t.Fatalf("%s did not wait: %s entered", what, p)
		case <-time.After(100 * time.Millisecond):
		}
	}
	applying := call(api.MethodApplyConfig, "1")
	<-entered
	c1, c2 := call(api.MethodCreateGroup, ""), call(api.MethodListLUs, "")
	waits("create-hg during apply", c1)
	waits("list-lu during apply", c2)
	close(gates["1"])
	for _, d := range []chan struct{}{applying, c1, c2} {
		<-d
	}
	for range 2 {
		<-entered
	}

	// Other calls are not held up by each other here.
	a, b := call(api.MethodListLUs, "2"), call(api.MethodCreateGroup, "2")
	for range 2 { // both inside at once
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			close(gates["2"])
			t.Fatal("two calls did not run side by side")
		}
	}
	close(gates["2"])
	<-a
	<-b
}
