// Command costar-atsbench measures ATS (COMPARE AND WRITE) latency the way
// VMware ESXi uses it: a 1-block heartbeat record that is compared with
// what was last written and replaced by the next generation, every
// -interval (0 = back to back), through one iSCSI session. It reports
// p50/p99/p99.9/max latency. scripts/bench.sh (-m ats) runs it while a
// 4 KiB QD32 random-write load runs on the same LU.
//
// Usage:
//
//	costar-atsbench [-interval 10ms] [-duration 10s] [-lba 8] [-i iqn] iscsi://host[:port]/target/lun
//
// The last stdout line is machine-readable:
//
//	RESULT target=<url> ops=N miscompares=M p50_us=.. p99_us=.. p999_us=.. max_us=.. mean_us=..
//
// or, when the target does not implement COMPARE AND WRITE (exit status 3):
//
//	RESULT target=<url> unsupported=1 reason="..."
//
// A miscompare means something else wrote the heartbeat block: the run
// re-reads it and goes on, and counts it. Exit status: 0 done, 1 failure
// (session lost, unexpected status), 2 usage, 3 ATS not supported.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/costar-project/costar/internal/initiator"
)

const (
	exitOK          = 0
	exitFail        = 1
	exitUsage       = 2
	exitUnsupported = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	url       string
	initiator string
	lba       uint64
	interval  time.Duration
	duration  time.Duration
	maxOps    int
	isid      uint
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("costar-atsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.initiator, "i", "iqn.2026-11.org.costar:atsbench", "initiator name")
	fs.Uint64Var(&o.lba, "lba", 8, "heartbeat block (keep the write load away from it)")
	fs.DurationVar(&o.interval, "interval", 10*time.Millisecond, "time between heartbeats (0 = back to back)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (at most 1h)")
	fs.IntVar(&o.maxOps, "count", 1_000_000, "stop after this many heartbeats")
	fs.UintVar(&o.isid, "isid", 0xa7, "last byte of the session's ISID")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: costar-atsbench [flags] iscsi://host[:port]/target/lun")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return o, errors.New("one iscsi:// URL required")
	}
	o.url = fs.Arg(0)
	switch {
	case o.duration <= 0 || o.duration > time.Hour:
		return o, fmt.Errorf("-duration %v: want 0 < d <= 1h", o.duration)
	case o.interval < 0:
		return o, fmt.Errorf("-interval %v: must not be negative", o.interval)
	case o.maxOps <= 0:
		return o, fmt.Errorf("-count %d: must be positive", o.maxOps)
	case o.isid > 0xff:
		return o, fmt.Errorf("-isid %d: one byte", o.isid)
	}
	return o, nil
}

// stats are the latencies of the heartbeats.
type stats struct {
	lat         []time.Duration
	miscompares int
}

// percentile returns the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (s *stats) result(url string) string {
	sorted := slices.Clone(s.lat)
	slices.Sort(sorted)
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	mean := time.Duration(0)
	if len(sorted) > 0 {
		mean = sum / time.Duration(len(sorted))
	}
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }
	maxLat := time.Duration(0)
	if len(sorted) > 0 {
		maxLat = sorted[len(sorted)-1]
	}
	return fmt.Sprintf("RESULT target=%s ops=%d miscompares=%d p50_us=%s p99_us=%s p999_us=%s max_us=%s mean_us=%s",
		url, len(sorted), s.miscompares, us(percentile(sorted, 50)), us(percentile(sorted, 99)),
		us(percentile(sorted, 99.9)), us(maxLat), us(mean))
}

// heartbeat is the record written at generation gen: magic, generation,
// a timestamp, then a pattern, as VMFS's heartbeat slots carry an owner
// and a generation.
func heartbeat(gen uint64, bs int) []byte {
	b := make([]byte, bs)
	copy(b, "COSTARHB")
	binary.BigEndian.PutUint64(b[8:], gen)
	binary.BigEndian.PutUint64(b[16:], uint64(time.Now().UnixNano()))
	for i := 24; i < bs; i++ {
		b[i] = byte(gen) ^ byte(i)
	}
	return b
}

// unsupported reports whether r says the target has no COMPARE AND WRITE
// (INVALID COMMAND OPERATION CODE, or INVALID FIELD IN CDB for the length).
func unsupported(r initiator.Response) (string, bool) {
	s, ok := r.SenseData()
	if r.Status != initiator.StatusCheckCondition || !ok || s.Key != initiator.KeyIllegalRequest {
		return "", false
	}
	switch {
	case s.ASC == 0x20 && s.ASCQ == 0x00:
		return "INVALID COMMAND OPERATION CODE", true
	case s.ASC == 0x24 && s.ASCQ == 0x00:
		return "INVALID FIELD IN CDB", true
	}
	return "", false
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "costar-atsbench:", err)
		return exitUsage
	}
	u, err := initiator.ParseURL(o.url)
	if err != nil {
		fmt.Fprintln(stderr, "costar-atsbench:", err)
		return exitUsage
	}
	// Every step is bounded: the run, plus time to log in and out.
	ctx, cancel := context.WithTimeout(ctx, o.duration+time.Minute)
	defer cancel()
	code, err := bench(ctx, o, u, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "costar-atsbench:", err)
	}
	return code
}

func bench(ctx context.Context, o options, u initiator.URL, stdout, stderr io.Writer) (int, error) {
	lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
	s, err := initiator.Dial(lctx, initiator.Config{Portal: u.Portal, Target: u.Target, Initiator: o.initiator,
		ISID: [6]byte{0x80, 0x00, 0x41, 0x54, 0x53, byte(o.isid)}})
	lcancel()
	if err != nil {
		return exitFail, err
	}
	defer func() {
		octx, ocancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ocancel()
		_ = s.Logout(octx)
	}()
	if r, err := s.ClearUnitAttentions(ctx, u.LUN); err != nil || r.Status != initiator.StatusGood {
		return exitFail, fmt.Errorf("TEST UNIT READY: %v %v", r, err)
	}
	blocks, bs32, err := s.Capacity(ctx, u.LUN)
	if err != nil {
		return exitFail, err
	}
	if o.lba >= blocks {
		return exitUsage, fmt.Errorf("-lba %d is beyond the LU's %d blocks", o.lba, blocks)
	}
	bs := int(bs32)
	read := func() ([]byte, error) {
		r, err := s.Do(ctx, u.LUN, initiator.Read16(o.lba, 1), nil, uint32(bs))
		if err != nil {
			return nil, err
		}
		if r.Status != initiator.StatusGood || len(r.Data) != bs {
			return nil, fmt.Errorf("READ of the heartbeat block: %v (%d bytes)", r, len(r.Data))
		}
		return r.Data, nil
	}
	cur, err := read()
	if err != nil {
		return exitFail, err
	}
	fmt.Fprintf(stderr, "costar-atsbench: %s LUN %d, %d-byte blocks, heartbeat at LBA %d every %v for %v\n",
		u.Target, u.LUN, bs, o.lba, o.interval, o.duration)

	var st stats
	st.lat = make([]time.Duration, 0, min(o.maxOps, 1<<20))
	end := time.Now().Add(o.duration)
	next := time.Now()
	for gen := uint64(1); len(st.lat) < o.maxOps && time.Now().Before(end); gen++ {
		if o.interval > 0 {
			if d := time.Until(next); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return exitFail, ctx.Err()
				}
			}
			next = next.Add(o.interval)
			if time.Until(next) < -o.interval { // fell behind: do not burst to catch up
				next = time.Now()
			}
		}
		rec := heartbeat(gen, bs)
		out := append(slices.Clone(cur), rec...)
		t0 := time.Now()
		r, err := s.Do(ctx, u.LUN, initiator.CompareAndWrite(o.lba, 1), out, 0)
		lat := time.Since(t0)
		if err != nil {
			return exitFail, fmt.Errorf("COMPARE AND WRITE: %w", err)
		}
		switch {
		case r.Status == initiator.StatusGood:
			st.lat = append(st.lat, lat)
			cur = rec
		case r.Is(initiator.KeyMiscompare, 0x1d, 0x00):
			st.lat = append(st.lat, lat)
			st.miscompares++
			if cur, err = read(); err != nil {
				return exitFail, err
			}
		default:
			if why, ok := unsupported(r); ok && len(st.lat) == 0 {
				fmt.Fprintf(stdout, "RESULT target=%s unsupported=1 reason=%q\n", o.url, why)
				return exitUnsupported, nil
			}
			return exitFail, fmt.Errorf("COMPARE AND WRITE: %v", r)
		}
	}
	fmt.Fprintln(stdout, st.result(o.url))
	return exitOK, nil
}
