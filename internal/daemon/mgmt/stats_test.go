package mgmt

import (
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/stmf"
)

func TestGetStats(t *testing.T) {
	r, s := aluaRig(t) // LU a as LUN 0; the rig's TUR got the power-on unit attention
	b := createLU(t, r, "/d/b", api.LUProps{Alias: ptr("bee")})
	a := must[[]api.LU](t)(r.m.ListLUs(bg, api.Empty{}))[0]
	senseOf(t, s, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0) // READ(10)
	senseOf(t, s, 0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0) // SYNCHRONIZE CACHE(10)

	all := must[api.Stats](t)(r.m.GetStats(bg, api.GetStatsRequest{}))
	if len(all.LUs) != 2 || all.LUs[0].GUID != a.GUID || all.LUs[1].GUID != b.GUID || all.LUs[1].Alias != "bee" {
		t.Fatalf("LUs %+v, want %s then %s (bee)", all.LUs, a.GUID, b.GUID)
	}
	if n := len(all.LatencyBoundsNs); n != stmf.NumLatencyBuckets-1 || all.LatencyBoundsNs[0] != 10_000 {
		t.Errorf("latency bounds %v", all.LatencyBoundsNs)
	}
	got := all.LUs[0]
	want := map[string]uint64{"read": 1, "write": 0, "unmap": 0, "ats": 0, "xcopy": 0, "flush": 1, "other": 1}
	for k, n := range want {
		if got.Commands[k] != n {
			t.Errorf("commands %v, want %v", got.Commands, want)
			break
		}
		var c uint64
		for _, v := range got.Latency[k].Buckets {
			c += v
		}
		if c != n || len(got.Latency[k].Buckets) != stmf.NumLatencyBuckets {
			t.Errorf("%s latency %+v, want %d observations", k, got.Latency[k], n)
		}
	}
	if got.CheckCondition != 1 || got.SenseKeys["unit_attention"] != 1 || len(got.SenseKeys) != 1 || got.InFlight != 0 {
		t.Errorf("errors: %+v", got)
	}

	for _, tc := range []struct {
		sel  []string
		want []string
	}{
		{[]string{"bee"}, []string{b.GUID}},
		{[]string{strings.ToLower(a.GUID), "bee"}, []string{a.GUID, b.GUID}},
	} {
		st := must[api.Stats](t)(r.m.GetStats(bg, api.GetStatsRequest{LUs: tc.sel}))
		var gs []string
		for _, l := range st.LUs {
			gs = append(gs, l.GUID)
		}
		if strings.Join(gs, " ") != strings.Join(tc.want, " ") {
			t.Errorf("select %v: %v, want %v", tc.sel, gs, tc.want)
		}
	}
	_, err := r.m.GetStats(bg, api.GetStatsRequest{LUs: []string{"nope"}})
	wantCode(t, err, api.CodeLUNotFound)
}
