package main

import (
	"math"
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/apitest"
)

// bounds are stmf's latency bucket bounds in ns (10 us .. 10 s).
var bounds = []int64{1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 2e7, 5e7, 1e8, 2e8, 5e8, 1e9, 2e9, 5e9, 1e10}

// luSnap is an LU snapshot with reads and writes, their latencies all in
// bucket b (and flushes in bucket 0), and bytes.
func luSnap(guid, alias string, reads, writes, flushes uint64, b int, sumNs int64) api.LUStats {
	h := func(n uint64, bucket int, sum int64) api.Histogram {
		bs := make([]uint64, len(bounds)+1)
		bs[bucket] = n
		return api.Histogram{Buckets: bs, SumNs: sum}
	}
	return api.LUStats{
		GUID: guid, Alias: alias,
		Commands:  map[string]uint64{"read": reads, "write": writes, "flush": flushes, "other": 3},
		BytesRead: reads * 4096, BytesWritten: writes * 8192, InFlight: 2,
		Latency: map[string]api.Histogram{
			"read": h(reads, b, sumNs), "write": h(writes, b, sumNs), "flush": h(flushes, 0, 0),
			"other": h(3, len(bounds), 3e10), // slow housekeeping is not shown
		},
	}
}

const g1, g2 = "600144F0C0A80101000067A1B2C30001", "600144F0C0A80101000067A1B2C30002"

func TestRates(t *testing.T) {
	prev := api.Stats{TimeNs: 1e9, LatencyBoundsNs: bounds, LUs: []api.LUStats{
		luSnap(g1, "db", 100, 50, 0, 8, 0), luSnap(g2, "", 10, 10, 0, 8, 0)}}
	// Two seconds later g1 did 200 reads and 100 writes, all between 2 and
	// 5 ms, 3 ms on average; g2 came online again (counters restarted).
	cur := api.Stats{TimeNs: 3e9, LatencyBoundsNs: bounds, LUs: []api.LUStats{
		luSnap(g1, "db", 300, 150, 0, 8, 900e6), luSnap(g2, "", 4, 0, 0, 8, 0)}}
	cur.LUs[0].Latency["read"].Buckets[8] = 300  // keep the totals consistent
	cur.LUs[0].Latency["write"].Buckets[8] = 150 // (luSnap put them there)
	r := rates(&prev, &cur)
	if r.Interval != 2 || len(r.LUs) != 2 {
		t.Fatalf("report %+v", r)
	}
	a := r.LUs[0]
	if a.Reads != 100 || a.Writes != 50 || a.KiBRead != 400 || a.KiBWritten != 400 || a.InFlight != 2 {
		t.Errorf("rates %+v", a)
	}
	// 300 commands in the interval, 1.8 s (two sums of 0.9 s) in total.
	if a.AvgLatencyMs == nil || math.Abs(*a.AvgLatencyMs-6) > 1e-9 {
		t.Errorf("avg %v, want 6 ms", a.AvgLatencyMs)
	}
	// p99 interpolated in the 2..5 ms bucket: 2 + 3 * 0.99.
	if a.P99LatencyMs == nil || math.Abs(*a.P99LatencyMs-4.97) > 1e-9 {
		t.Errorf("p99 %v, want 4.97 ms", a.P99LatencyMs)
	}
	if b := r.LUs[1]; b.Reads != 2 || b.Writes != 0 {
		t.Errorf("restarted LU %+v, want its new counts from zero", b)
	}

	// Nothing finished: no latency.
	idle := rates(&cur, &cur)
	if l := idle.LUs[0]; l.Reads != 0 || l.AvgLatencyMs != nil || l.P99LatencyMs != nil {
		t.Errorf("idle interval %+v", l)
	}
}

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		buckets []uint64
		q, want float64
	}{
		{[]uint64{10}, 0.5, 5e3}, // inside the first bucket, from 0
		{[]uint64{0, 0, 100}, 0.99, 2e4 + 3e4*0.99},
		{[]uint64{99, 0, 1}, 0.99, 1e4},             // the 99th of 100 is in the first bucket
		{append(make([]uint64, 19), 5), 0.99, 1e10}, // slower than 10 s: the last bound
		{nil, 0.99, 0},
	} {
		b := make([]uint64, len(bounds)+1)
		copy(b, tc.buckets)
		h := hist{buckets: b}
		if got := h.quantile(tc.q, bounds); math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.buckets, tc.q, got, tc.want)
		}
	}
}

func TestListStatsCommandLine(t *testing.T) {
	snap := api.Stats{TimeNs: 5e9, LatencyBoundsNs: bounds, LUs: []api.LUStats{
		luSnap(g1, "db", 1000, 500, 10, 6, 800e6), luSnap(g2, "", 0, 0, 0, 0, 0)}}
	for _, tc := range []struct {
		name           string
		args           []string
		reply          apitest.Reply
		code           int
		stdout, stderr string
		sent           string // request body; "" = the daemon must not be asked
	}{
		{name: "totals", args: []string{"stmfadm", "list-stats"}, reply: apitest.Reply{Body: snap}, code: exitOK,
			stdout: "GUID                             ALIAS                       r            w             kr             kw  actv    avg_ms    p99_ms\n" +
				"600144F0C0A80101000067A1B2C30001 db                       1000          500           4000           4000     2     1.060     0.995\n" +
				"600144F0C0A80101000067A1B2C30002 -                           0            0              0              0     2         -         -\n\n",
			sent: `{}`},
		{name: "selected by alias", args: []string{"stmfadm", "list-stats", "-o", "json", "db"}, reply: apitest.Reply{Body: api.Stats{TimeNs: 5e9, LatencyBoundsNs: bounds}},
			code: exitOK, stdout: "{\n  \"time\": ", sent: `{"lus":["db"]}`},
		{name: "unknown LU", args: []string{"stmfadm", "list-stats", "nope"},
			reply: apitest.Reply{Err: api.Errorf(api.CodeLUNotFound, "nope", "no LU with GUID or alias %q", "nope")},
			code:  exitFail, stderr: "stmfadm: nope: not found\n", sent: `{"lus":["nope"]}`},
		{name: "interval zero", args: []string{"stmfadm", "list-stats", "-i", "0"}, code: exitUsage,
			stderr: "stmfadm: -i 0: interval must be a number of seconds, 0.1 to 86400\n"},
		{name: "count without interval", args: []string{"stmfadm", "list-stats", "-c", "3"}, code: exitUsage,
			stderr: "stmfadm: -c needs -i\n"},
		{name: "bad count", args: []string{"stmfadm", "list-stats", "-i", "1", "-c", "0"}, code: exitUsage,
			stderr: "stmfadm: -c 0: count must be a positive integer\n"},
		{name: "bad format", args: []string{"stmfadm", "list-stats", "-o", "xml"}, code: exitUsage,
			stderr: "stmfadm: -o xml: unknown output format (text or json)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := apitest.Serve(t, map[string]apitest.Reply{api.MethodGetStats: tc.reply})
			code, stdout, stderr := runCLI(t, srv.Socket, tc.args...)
			if code != tc.code || stderr != tc.stderr || !strings.HasPrefix(stdout, tc.stdout) || (tc.stdout == "" && stdout != "") {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
			calls := srv.Calls()
			switch {
			case tc.sent == "" && len(calls) != 0:
				t.Errorf("the daemon was asked: %+v", calls)
			case tc.sent != "" && (len(calls) != 1 || calls[0].Method != api.MethodGetStats || strings.TrimSpace(calls[0].Body) != tc.sent):
				t.Errorf("calls %+v, want one %s %s", calls, api.MethodGetStats, tc.sent)
			}
		})
	}
}

// TestListStatsInterval checks -i/-c: COUNT reports, each from a new
// snapshot (the scripted daemon answers the same one, so rates are 0).
func TestListStatsInterval(t *testing.T) {
	snap := api.Stats{TimeNs: 5e9, LatencyBoundsNs: bounds, LUs: []api.LUStats{luSnap(g1, "db", 1000, 500, 10, 6, 800e6)}}
	srv := apitest.Serve(t, map[string]apitest.Reply{api.MethodGetStats: {Body: snap}})
	code, stdout, stderr := runCLI(t, srv.Socket, "stmfadm", "list-stats", "-i", "0.1", "-c", "2")
	if code != exitOK || stderr != "" || strings.Count(stdout, " w/s") != 2 || strings.Count(stdout, "db ") != 2 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if n := len(srv.Calls()); n != 3 {
		t.Errorf("%d calls, want 3 (a baseline and one per report)", n)
	}
}
