// Command costar-soak is a verified-I/O soak load for an iSCSI target:
// N sessions × QD commands of mixed reads, writes (some FUA) and
// SYNCHRONIZE CACHE against one LU, while a chaos thread issues ABORT
// TASK, LUN RESET, abrupt disconnects, session reinstatement, sessions
// that stop answering NOP-In, and view changes of a second LU.
//
// Every block written carries its LBA, a sequence number and a CRC-32C;
// every read is checked against a model of what each block must hold
// (model.go), and at the end the whole region is read once more. It
// reports mismatches and lost acknowledged writes (both must be 0),
// latency percentiles, and the target's peak RSS and goroutines and
// whether both return to their idle values after the run.
//
// scripts/soak.sh starts stmfd and runs this; see its --help.
//
// Usage:
//
//	costar-soak [flags] iscsi://host[:port]/target/lun
//
// The last stdout line is machine-readable (RESULT key=value ...). Exit
// status: 0 pass, 1 a check failed, 2 usage or setup error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/costar-project/costar/internal/blockpat"
	"github.com/costar-project/costar/internal/latency"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/costar-project/costar/api/client"
	"github.com/costar-project/costar/internal/initiator"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	url          initiator.URL
	initiator    string
	sessions, qd int
	duration     time.Duration
	maxOps       uint64
	region       uint64 // bytes (0: the whole LU)
	lun          uint64
	writePct     int
	syncPct      int
	cmdTimeout   time.Duration
	dialPatience time.Duration

	chaos       []string
	chaosEvery  time.Duration
	maxChaos    int
	nopDeadline time.Duration

	pid         int
	socket      string
	viewLU      string
	viewLUN     uint
	settle      time.Duration
	rssTol      uint64 // bytes
	heapTol     uint64 // bytes
	gorTol      int
	rssLimit    uint64 // bytes; 0 = report only
	sampleEvery time.Duration
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	var chaos, region, rssTol, heapTol, rssLimit string
	fs := flag.NewFlagSet("costar-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.initiator, "i", "iqn.2026-12.org.costar:soak", "initiator name prefix (each session adds -NNN)")
	fs.IntVar(&o.sessions, "sessions", 64, "sessions (each its own initiator name and ISID)")
	fs.IntVar(&o.qd, "qd", 32, "commands in flight per session")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long the load runs (at most 24h)")
	fs.Uint64Var(&o.maxOps, "max-ops", 1<<32, "at most this many commands per queue slot")
	fs.StringVar(&region, "region", "256M", "bytes of the LU the load covers from LBA 0 (K/M/G; 0 = all)")
	fs.IntVar(&o.writePct, "write-pct", 45, "percent of commands that are writes")
	fs.IntVar(&o.syncPct, "sync-pct", 1, "percent of commands that are SYNCHRONIZE CACHE")
	fs.DurationVar(&o.cmdTimeout, "cmd-timeout", 15*time.Second, "a command without a response this long is aborted and counted")
	fs.DurationVar(&o.dialPatience, "login-patience", 30*time.Second, "give up (fail) when a session cannot log in again this long")
	fs.StringVar(&chaos, "chaos", "all", "disruptions: all, none, or a list of abort,lun-reset,disconnect,reinstate,view,nop")
	fs.DurationVar(&o.chaosEvery, "chaos-every", 2*time.Second, "mean time between disruptions")
	fs.IntVar(&o.maxChaos, "max-chaos", 100000, "at most this many disruptions")
	fs.DurationVar(&o.nopDeadline, "nop-deadline", 40*time.Second, "a session ignoring NOP-In must be dropped within this")
	fs.IntVar(&o.pid, "pid", 0, "target PID: sample its RSS from /proc (0 = do not)")
	fs.StringVar(&o.socket, "socket", "", "stmfd management socket: goroutine count and view changes")
	fs.StringVar(&o.viewLU, "view-lu", "", "GUID of a second LU whose view the chaos thread adds and removes (needs -socket)")
	fs.UintVar(&o.viewLUN, "view-lun", 1, "LUN the second LU's view uses")
	fs.DurationVar(&o.settle, "settle", 30*time.Second, "after the run, wait at most this for RSS and goroutines to return to their idle values")
	fs.StringVar(&rssTol, "rss-tolerance", "16M", "RSS counts as back at idle within this many bytes above it: pages the heap cannot return (fragmentation) and runtime metadata sized for the peak; +5-13 MiB after 60 s, +15.7 MiB after 10 min measured, with the live heap back within 2.1 MiB")
	fs.StringVar(&heapTol, "heap-tolerance", "4M", "the live heap (list-state heap_live_bytes, after the daemon's idle GC) counts as back at idle within this")
	fs.IntVar(&o.gorTol, "goroutine-tolerance", 2, "goroutines count as back at idle within this many above it")
	fs.StringVar(&rssLimit, "rss-limit", "0", "fail when the target's peak RSS exceeds this (0 = report only)")
	fs.DurationVar(&o.sampleEvery, "sample-every", 250*time.Millisecond, "RSS/goroutine sampling interval")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: costar-soak [flags] iscsi://host[:port]/target/lun")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return o, errors.New("want one iscsi:// URL")
	}
	u, err := initiator.ParseURL(fs.Arg(0))
	if err != nil {
		return o, err
	}
	o.url, o.lun = u, u.LUN
	if o.chaos, err = parseChaos(chaos); err != nil {
		return o, err
	}
	for _, x := range []struct {
		name string
		in   string
		out  *uint64
	}{{"-region", region, &o.region}, {"-rss-tolerance", rssTol, &o.rssTol}, {"-heap-tolerance", heapTol, &o.heapTol}, {"-rss-limit", rssLimit, &o.rssLimit}} {
		if *x.out, err = parseSize(x.in); err != nil {
			return o, fmt.Errorf("%s: %w", x.name, err)
		}
	}
	switch {
	case o.sessions < 1 || o.sessions > 4096:
		return o, errors.New("-sessions must be 1..4096")
	case o.qd < 1 || o.qd > 1024:
		return o, errors.New("-qd must be 1..1024")
	case o.duration <= 0 || o.duration > 24*time.Hour:
		return o, errors.New("-duration must be in (0, 24h]")
	case o.writePct < 0 || o.syncPct < 0 || o.writePct+o.syncPct > 100:
		return o, errors.New("-write-pct and -sync-pct must be ≥ 0 and add up to at most 100")
	case o.cmdTimeout <= 0 || o.dialPatience <= 0 || o.chaosEvery <= 0 || o.sampleEvery <= 0 || o.nopDeadline <= 0:
		return o, errors.New("timeouts and intervals must be positive")
	case o.viewLU != "" && o.socket == "":
		return o, errors.New("-view-lu needs -socket")
	}
	return o, nil
}

// parseSize reads a byte count with an optional K/M/G suffix (powers of 1024).
func parseSize(s string) (uint64, error) {
	mult := uint64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K', 'k':
			mult = 1 << 10
		case 'M', 'm':
			mult = 1 << 20
		case 'G', 'g':
			mult = 1 << 30
		}
		if mult != 1 {
			s = s[:n-1]
		}
	}
	var v uint64
	if _, err := fmt.Sscanf(s, "%d", &v); err != nil || fmt.Sprint(v) != s {
		return 0, fmt.Errorf("bad size %q", s)
	}
	if v > (1<<63)/mult {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return v * mult, nil
}

// soak is one run.
type soak struct {
	o         options
	baseCfg   initiator.Config
	blockSize uint32
	m         *model
	seq       atomic.Uint64
	st        stats
	cs        chaosStats
	lat       latency.Hist
	workers   []*worker
	api       *client.Client
	viewEntry int // chaos thread only
	stop      atomic.Bool

	fatalMu  sync.Mutex
	fatalErr error
}

func (s *soak) stopping() bool { return s.stop.Load() }

// fatal ends the run early: the target became unusable.
func (s *soak) fatal(err error) {
	s.fatalMu.Lock()
	if s.fatalErr == nil {
		s.fatalErr = err
	}
	s.fatalMu.Unlock()
	s.stop.Store(true)
}

// verify checks n read blocks starting at lba.
func (s *soak) verify(lba, n uint64, data []byte) {
	bs := uint64(s.blockSize)
	for i := uint64(0); i < n; i++ {
		res, detail := s.m.check(lba+i, data[i*bs:(i+1)*bs])
		switch res {
		case checkLost:
			s.st.note(&s.st.lost, "LOST: %s", detail)
		case checkMismatch:
			s.st.note(&s.st.mismatches, "MISMATCH: %s", detail)
		}
	}
	s.st.blocksVerified.Add(int64(n))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "costar-soak:", err)
			return exitUsage
		}
		return exitOK
	}
	s := &soak{o: o, viewEntry: -1, baseCfg: initiator.Config{Portal: o.url.Portal, Target: o.url.Target}}
	if o.socket != "" {
		s.api = client.New(o.socket)
	}
	if err := s.setup(ctx); err != nil {
		fmt.Fprintln(stderr, "costar-soak:", err)
		return exitUsage
	}
	return s.report(ctx, s.runLoad(ctx), stdout)
}

// setup reads the LU's geometry and clears its unit attentions.
func (s *soak) setup(ctx context.Context) error {
	cfg := s.baseCfg
	cfg.Initiator = s.o.initiator + "-setup"
	cfg.ISID = [6]byte{0x80, 0x00, 0x53, 0x45, 0x54, 0x00}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sess, err := initiator.Dial(tctx, cfg)
	if err != nil {
		return err
	}
	defer sess.Close()
	if _, err := sess.ClearUnitAttentions(tctx, s.o.lun); err != nil {
		return err
	}
	blocks, bs, err := sess.Capacity(tctx, s.o.lun)
	if err != nil {
		return err
	}
	if bs < blockpat.MinBlockSize || bs > 1<<20 {
		return fmt.Errorf("block size %d is not supported", bs)
	}
	s.blockSize = bs
	if s.o.region > 0 {
		blocks = min(blocks, s.o.region/uint64(bs))
	}
	if blocks < 1024 {
		return fmt.Errorf("the region has only %d blocks (want at least 1024)", blocks)
	}
	s.m = newModel(blocks)
	_ = sess.Logout(tctx)
	return nil
}
