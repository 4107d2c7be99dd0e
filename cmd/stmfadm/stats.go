package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/cliutil"
)

const listStatsHelp = `An iostat for logical units (a costar extension; COMSTAR kept these numbers in kstat).

Without -i it prints, per LU, what stmfd counted since the LU came online: commands
read (r) and written (w), KiB read and written, commands in flight, and the average and
99th percentile service time. With -i it samples every SECONDS and prints per-second
rates over each interval: r/s, w/s, kr/s, kw/s, the in-flight count at the end of the
interval, and the average and p99 service time of the commands that finished in it;
-c stops after COUNT reports (default: until interrupted).

Service times are from the command's arrival in stmfd to its completion, over data and
cache commands (read, write, flush, unmap, ATS, XCOPY; not TEST UNIT READY and other
housekeeping). The p99 is interpolated in the latency histogram's buckets (10 us .. 10 s,
1-2-5 steps), as Prometheus's histogram_quantile does; a dash means no command finished.

LUs are named by GUID or alias; none means every LU. -o json prints one JSON document
per report.

EXAMPLES:
   stmfadm list-stats
   stmfadm list-stats -i 1 -c 3
   stmfadm list-stats -i 5 vmfs01 600144F0C0A80101000067A1B2C30001
   stmfadm list-stats -i 1 -c 10 -o json`

// addStatsCommands adds list-stats to stmfadm.
func addStatsCommands(app *cli.App, e *env) {
	app.Commands = append(app.Commands, &cli.Command{
		Name:      "list-stats",
		Usage:     "show I/O rates and service times per logical unit (an iostat for LUs)",
		ArgsUsage: "[lu-name|alias...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "interval", Aliases: []string{"i"}, Usage: "report rates every SECONDS (0.1 and up)"},
			&cli.StringFlag{Name: "count", Aliases: []string{"c"}, Usage: "stop after COUNT reports (needs -i)"},
			cliutil.OutputFlag(),
		},
		Description: listStatsHelp,
		Action:      e.listStats,
	})
}

// statsKinds are the command kinds whose service times list-stats shows.
var statsKinds = []string{"read", "write", "flush", "unmap", "ats", "xcopy"}

// luRate is one LU's line of a report.
type luRate struct {
	GUID  string `json:"guid"`
	Alias string `json:"alias,omitempty"`
	// Per second over the interval; totals when the report has no interval.
	Reads        float64  `json:"reads"`
	Writes       float64  `json:"writes"`
	KiBRead      float64  `json:"kib_read"`
	KiBWritten   float64  `json:"kib_written"`
	InFlight     uint64   `json:"in_flight"`
	AvgLatencyMs *float64 `json:"avg_latency_ms"` // null: no command finished
	P99LatencyMs *float64 `json:"p99_latency_ms"`
}

// report is one list-stats report.
type report struct {
	Time     time.Time `json:"time"`
	Interval float64   `json:"interval_s,omitempty"` // 0: totals since the LUs came online
	LUs      []luRate  `json:"lus"`
}

func (e *env) listStats(c *cli.Context) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	var interval time.Duration
	if c.IsSet("interval") {
		s, err := strconv.ParseFloat(c.String("interval"), 64)
		if err != nil || s < 0.1 || s > 86400 {
			return cliutil.Usagef("-i %s: interval must be a number of seconds, 0.1 to 86400", c.String("interval"))
		}
		interval = time.Duration(s * float64(time.Second))
	}
	count := 0 // unlimited
	if c.IsSet("count") {
		if interval == 0 {
			return cliutil.Usagef("-c needs -i")
		}
		n, err := strconv.Atoi(c.String("count"))
		if err != nil || n < 1 {
			return cliutil.Usagef("-c %s: count must be a positive integer", c.String("count"))
		}
		count = n
	}
	req := api.GetStatsRequest{LUs: c.Args().Slice()}
	prev, err := e.client.GetStats(c.Context, req)
	if err != nil {
		return e.statsError(err)
	}
	if interval == 0 {
		return e.printReport(asJSON, rates(nil, &prev))
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 0; count == 0 || n < count; n++ {
		select {
		case <-c.Context.Done():
			return nil // interrupted: the reports so far stand
		case <-tick.C:
		}
		cur, err := e.client.GetStats(c.Context, req)
		if err != nil {
			if errors.Is(c.Context.Err(), context.Canceled) {
				return nil
			}
			return e.statsError(err)
		}
		if err := e.printReport(asJSON, rates(&prev, &cur)); err != nil {
			return err
		}
		prev = cur
	}
	return nil
}

func (e *env) statsError(err error) error {
	var ae *api.Error
	if api.CodeOf(err) == api.CodeLUNotFound && errors.As(err, &ae) {
		e.errorf("%s: not found", ae.Subject)
		return errFailed
	}
	e.unexpected(err, "")
	return errFailed
}

func (e *env) printReport(asJSON bool, r report) error {
	if asJSON {
		return cliutil.WriteJSON(e.stdout, r)
	}
	writeReport(e.stdout, r)
	return nil
}

// writeReport prints a report as a table, a blank line after it.
func writeReport(w io.Writer, r report) {
	if r.Interval == 0 {
		fmt.Fprintf(w, "%-32s %-16s %12s %12s %14s %14s %5s %9s %9s\n",
			"GUID", "ALIAS", "r", "w", "kr", "kw", "actv", "avg_ms", "p99_ms")
	} else {
		fmt.Fprintf(w, "%-32s %-16s %9s %9s %10s %10s %5s %9s %9s\n",
			"GUID", "ALIAS", "r/s", "w/s", "kr/s", "kw/s", "actv", "avg_ms", "p99_ms")
	}
	for _, l := range r.LUs {
		alias := l.Alias
		if alias == "" {
			alias = "-"
		}
		if r.Interval == 0 {
			fmt.Fprintf(w, "%-32s %-16s %12.0f %12.0f %14.0f %14.0f %5d %9s %9s\n",
				l.GUID, alias, l.Reads, l.Writes, l.KiBRead, l.KiBWritten, l.InFlight, ms(l.AvgLatencyMs), ms(l.P99LatencyMs))
		} else {
			fmt.Fprintf(w, "%-32s %-16s %9.1f %9.1f %10.1f %10.1f %5d %9s %9s\n",
				l.GUID, alias, l.Reads, l.Writes, l.KiBRead, l.KiBWritten, l.InFlight, ms(l.AvgLatencyMs), ms(l.P99LatencyMs))
		}
	}
	fmt.Fprintln(w)
}

func ms(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', 3, 64)
}

// rates turns two snapshots into a report: per-second rates over the
// interval between them, or totals when prev is nil. An LU missing from
// prev, or whose counters went down (it came online again), counts from
// zero.
func rates(prev, cur *api.Stats) report {
	r := report{Time: time.Unix(0, cur.TimeNs), LUs: []luRate{}}
	old := map[string]*api.LUStats{}
	per := 1.0
	if prev != nil {
		for i := range prev.LUs {
			old[prev.LUs[i].GUID] = &prev.LUs[i]
		}
		r.Interval = float64(cur.TimeNs-prev.TimeNs) / 1e9
		if r.Interval <= 0 {
			r.Interval = 1e-9
		}
		per = 1 / r.Interval
	}
	for i := range cur.LUs {
		c := &cur.LUs[i]
		p := old[c.GUID]
		if p != nil && (c.Commands["read"] < p.Commands["read"] || c.Commands["write"] < p.Commands["write"]) {
			p = nil
		}
		if p == nil {
			p = &api.LUStats{}
		}
		l := luRate{
			GUID: c.GUID, Alias: c.Alias, InFlight: c.InFlight,
			Reads:      float64(c.Commands["read"]-p.Commands["read"]) * per,
			Writes:     float64(c.Commands["write"]-p.Commands["write"]) * per,
			KiBRead:    float64(c.BytesRead-p.BytesRead) / 1024 * per,
			KiBWritten: float64(c.BytesWritten-p.BytesWritten) / 1024 * per,
		}
		h := latencyDelta(c, p)
		if n := h.count(); n > 0 {
			avg := float64(h.sum) / float64(n) / 1e6
			p99 := h.quantile(0.99, cur.LatencyBoundsNs) / 1e6
			l.AvgLatencyMs, l.P99LatencyMs = &avg, &p99
		}
		r.LUs = append(r.LUs, l)
	}
	return r
}

// hist is a latency histogram difference.
type hist struct {
	buckets []uint64
	sum     int64 // ns
}

func (h *hist) count() uint64 {
	var n uint64
	for _, b := range h.buckets {
		n += b
	}
	return n
}

// latencyDelta sums the statsKinds histograms of c minus those of p.
func latencyDelta(c, p *api.LUStats) hist {
	var h hist
	for _, k := range statsKinds {
		ch, ph := c.Latency[k], p.Latency[k]
		if h.buckets == nil {
			h.buckets = make([]uint64, len(ch.Buckets))
		}
		for i := range ch.Buckets {
			if i >= len(h.buckets) {
				break
			}
			var old uint64
			if i < len(ph.Buckets) {
				old = ph.Buckets[i]
			}
			if ch.Buckets[i] >= old {
				h.buckets[i] += ch.Buckets[i] - old
			}
		}
		h.sum += ch.SumNs - ph.SumNs
	}
	return h
}

// quantile interpolates linearly inside the bucket holding the q-th
// observation (bounds in ns, one fewer than buckets; the last bucket is
// open and reports its lower bound).
func (h *hist) quantile(q float64, bounds []int64) float64 {
	n := h.count()
	if len(bounds) == 0 || n == 0 {
		return 0
	}
	rank := q * float64(n)
	var cum uint64
	for i, b := range h.buckets {
		if b == 0 {
			continue
		}
		if float64(cum+b) >= rank {
			if i >= len(bounds) {
				return float64(bounds[len(bounds)-1])
			}
			lower := 0.0
			if i > 0 {
				lower = float64(bounds[i-1])
			}
			upper := float64(bounds[i])
			return lower + (upper-lower)*(rank-float64(cum))/float64(b)
		}
		cum += b
	}
	return 0
}
