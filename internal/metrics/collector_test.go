package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/costar-project/costar/portprovider/iscsi"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// testLU answers reads with zeros and everything else GOOD, after a
// fixed delay, so latencies land in a known bucket range.
type testLU struct{ guid stmf.GUID }

func (l *testLU) GUID() stmf.GUID { return l.guid }

// Admit classes the task as lu's command table does.
func (l *testLU) Admit(t *stmf.Task) {
	switch t.CDB[0] {
	case 0x28:
		t.SetKind(stmf.KindRead)
	case 0x2a:
		t.SetKind(stmf.KindWrite)
	case 0x35:
		t.SetKind(stmf.KindFlush)
	}
}
func (l *testLU) Execute(t *stmf.Task) {
	time.Sleep(2 * time.Millisecond)
	switch t.CDB[0] {
	case 0x28:
		t.CompleteData(make([]byte, t.ExpectedLen), nil)
	case 0x2a:
		if _, err := t.Data(); err != nil {
			t.CompleteSense(scsi.NewSense(scsi.KeyAbortedCommand, scsi.ASCNoAdditionalSense))
			return
		}
		t.CompleteStatus(scsi.StatusGood)
	default:
		t.CompleteStatus(scsi.StatusGood)
	}
}

type chanTransport struct {
	out  []byte
	done chan *stmf.Result
}

func (c *chanTransport) ReceiveData(context.Context) ([]byte, error) {
	if c.out == nil {
		return nil, errors.New("no data")
	}
	return c.out, nil
}
func (c *chanTransport) Deliver(r *stmf.Result) { c.done <- r }
func (c *chanTransport) Drop()                  { c.done <- nil }

func submit(t *testing.T, s *stmf.Session, cdb []byte, dir scsi.DataDir, n uint32) {
	t.Helper()
	tr := &chanTransport{done: make(chan *stmf.Result, 1)}
	if dir == scsi.DirWrite {
		tr.out = make([]byte, n)
	}
	task := stmf.NewTask(tr)
	task.RawLUN = scsi.EncodeLUN(0)
	task.CDB, task.Dir, task.ExpectedLen = cdb, dir, n
	s.Submit(task)
	select {
	case <-tr.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("cdb % x: no answer", cdb)
	}
}

// rig is a framework with one LU (alias "db") behind one port and a
// session that has run reads, writes and a flush.
func rig(t *testing.T, reads, writes int) (Sources, stmf.GUID) {
	t.Helper()
	fw := stmf.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	g, err := stmf.ParseGUID("600144F0C0FFEE000000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.RegisterLU(&testLU{guid: g}); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(g, stmf.ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	port, err := fw.RegisterPort(stmf.PortSpec{TargetName: "iqn.2026-11.test:t", Name: "iqn.2026-11.test:t,t,0x0001", Group: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := port.OpenSession(stmf.Initiator{Name: "iqn.2026-11.test:i", PortName: "iqn.2026-11.test:i,i,0x1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	submit(t, s, make([]byte, 6), scsi.DirNone, 0) // TUR: the power-on unit attention
	for range reads {
		submit(t, s, []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}, scsi.DirRead, 4096)
	}
	for range writes {
		submit(t, s, []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}, scsi.DirWrite, 512)
	}
	submit(t, s, []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}, scsi.DirNone, 0)
	var iscsiStats iscsi.Stats
	iscsiStats.Targets = map[string]iscsi.TargetStats{"iqn.2026-11.test:t": {Sessions: 1, LoginStats: iscsi.LoginStats{Logins: 3}}}
	iscsiStats.Initiators = map[string]iscsi.LoginStats{"iqn.2026-11.test:i": {Logins: 3, Failures: [iscsi.NumLoginFailures]uint64{iscsi.LoginAuth: 2}}}
	return Sources{
		Stats:   fw.Stats,
		Aliases: func() map[stmf.GUID]string { return map[stmf.GUID]string{g: "db"} },
		ISCSI:   func() iscsi.Stats { return iscsiStats },
		ALUA:    func() map[uint16]stmf.ALUAState { return map[uint16]stmf.ALUAState{1: stmf.ALUAStandby} },
	}, g
}

// scrape fetches /metrics from h and parses it.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return fams
}

// find returns the metric of family name whose labels include want.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric family %s", name)
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("%s: no series with %v", name, want)
	return nil
}

func TestScrape(t *testing.T) {
	const reads, writes = 7, 5
	src, g := rig(t, reads, writes)
	srv, err := New(src, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, srv.Handler())
	lu := map[string]string{"guid": g.String(), "alias": "db"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range lu {
			m[a] = b
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"costar_lu_commands_total", with("kind", "read"), reads},
		{"costar_lu_commands_total", with("kind", "write"), writes},
		{"costar_lu_commands_total", with("kind", "flush"), 1},
		{"costar_lu_commands_total", with("kind", "other"), 1},
		{"costar_lu_read_bytes_total", lu, reads * 4096},
		{"costar_lu_written_bytes_total", lu, writes * 512},
		{"costar_lu_check_conditions_total", with("sense_key", "unit_attention"), 1},
		{"costar_lu_status_total", with("status", "check_condition"), 1},
		{"costar_lu_status_total", with("status", "reservation_conflict"), 0},
		{"costar_lu_ats_miscompares_total", lu, 0},
		{"costar_lu_commands_in_flight", lu, 0},
		{"costar_target_port_commands_total", map[string]string{"target": "iqn.2026-11.test:t", "port": "iqn.2026-11.test:t,t,0x0001", "kind": "read"}, reads},
		{"costar_session_commands_total", map[string]string{"initiator_port": "iqn.2026-11.test:i,i,0x1", "kind": "write"}, writes},
		{"costar_session_status_total", map[string]string{"initiator_port": "iqn.2026-11.test:i,i,0x1", "status": "check_condition"}, 1},
		{"costar_iscsi_logins_total", map[string]string{"target": "iqn.2026-11.test:t"}, 3},
		{"costar_iscsi_sessions", map[string]string{"target": "iqn.2026-11.test:t"}, 1},
		{"costar_iscsi_initiator_login_failures_total", map[string]string{"initiator": "iqn.2026-11.test:i", "reason": "auth"}, 2},
		{"costar_iscsi_initiator_login_failures_total", map[string]string{"initiator": "iqn.2026-11.test:i", "reason": "timeout"}, 0},
		{"costar_alua_state", map[string]string{"tpg": "1", "state": "standby"}, 1},
		{"costar_alua_state", map[string]string{"tpg": "1", "state": "active-optimized"}, 0},
	} {
		m := find(t, fams, tc.name, tc.labels)
		var got float64
		switch {
		case m.Counter != nil:
			got = m.Counter.GetValue()
		case m.Gauge != nil:
			got = m.Gauge.GetValue()
		}
		if got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	for kind, n := range map[string]uint64{"read": reads, "write": writes, "flush": 1} {
		h := find(t, fams, "costar_lu_latency_seconds", with("kind", kind)).Histogram
		// The text format adds the +Inf bucket.
		if h.GetSampleCount() != n || len(h.Bucket) != len(stmf.LatencyBounds())+1 {
			t.Fatalf("%s histogram: %d samples, %d buckets", kind, h.GetSampleCount(), len(h.Bucket))
		}
		// The LU sleeps 2 ms: nothing at or under 1 ms, everything by 10 s.
		if b := h.Bucket[0]; b.GetUpperBound() != 10e-6 || b.GetCumulativeCount() != 0 {
			t.Errorf("%s: first bucket %v", kind, b)
		}
		if b := h.Bucket[6]; b.GetUpperBound() != 1e-3 || b.GetCumulativeCount() != 0 {
			t.Errorf("%s: 1 ms bucket %v", kind, b)
		}
		if b := h.Bucket[len(h.Bucket)-2]; b.GetUpperBound() != 10 || b.GetCumulativeCount() != n {
			t.Errorf("%s: last bucket %v", kind, b)
		}
		if s := h.GetSampleSum(); s < float64(n)*2e-3 {
			t.Errorf("%s: sum %v s, want at least %v", kind, s, float64(n)*2e-3)
		}
	}
	for _, name := range []string{"go_goroutines", "go_build_info", "process_start_time_seconds"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	problems, err := testutil.CollectAndLint(newCollector(src))
	if err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestReconfigure(t *testing.T) {
	src, _ := rig(t, 1, 1)
	srv, err := New(src, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() { _ = srv.Stop(ctx) })
	get := func(addr string) error {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), "costar_lu_commands_total") {
			return errors.New(resp.Status)
		}
		return nil
	}
	if srv.Addr() != "" {
		t.Fatal("listening before Reconfigure")
	}
	if err := srv.Reconfigure(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	first := srv.Addr()
	if err := get(first); err != nil {
		t.Fatalf("scrape %s: %v", first, err)
	}
	// A bad address fails and the old listener keeps serving.
	if err := srv.Reconfigure(ctx, "256.0.0.1:1"); err == nil {
		t.Fatal("bad address accepted")
	}
	if srv.Addr() != first || get(first) != nil {
		t.Fatalf("old listener gone after a failed reconfigure: %q", srv.Addr())
	}
	// The same setting (a reload with nothing changed) keeps the listener.
	if err := srv.Reconfigure(ctx, "127.0.0.1:0"); err != nil || srv.Addr() != first {
		t.Fatalf("same address: err %v, now %q, was %q", err, srv.Addr(), first)
	}
	if err := srv.Reconfigure(ctx, "127.0.0.2:0"); err != nil {
		t.Fatal(err)
	}
	second := srv.Addr()
	if second == first || get(second) != nil || get(first) == nil {
		t.Fatalf("moved from %s to %s: new must serve, old must not", first, second)
	}
	if err := srv.Reconfigure(ctx, ""); err != nil || srv.Addr() != "" || get(second) == nil {
		t.Fatalf("turned off: err %v, addr %q", err, srv.Addr())
	}
}
