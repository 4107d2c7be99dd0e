// Command costar-loadgen drives block I/O at an iSCSI LU and reports IOPS
// and latency percentiles. It logs in with costar's small initiator
// (internal/initiator), then runs each session's commands from one
// goroutine of its own (engine.go) so that the client costs the 2-core
// benchmark machine as little CPU as libiscsi's iscsi-perf does. scripts/bench.sh runs it against stmfd and tgt alike for
// the figures libiscsi's iscsi-perf and qemu-img bench cannot give:
// several sessions, latency percentiles, FUA writes, a read/write mix and
// CRC32C digests.
//
// Usage:
//
//	costar-loadgen [-sessions 1] [-qd 32] [-bs 4096] [-rw randread] [-rwmix 70] [-fua]
//	               [-digests] [-duration 10s] [-i iqn] iscsi://host[:port]/target/lun
//	costar-loadgen -pingpong-serve 127.0.0.1:PORT [-req 48] [-resp 4144]
//	costar-loadgen -pingpong 127.0.0.1:PORT [-req 48] [-resp 4144] [-duration 10s]
//
// -rw is read, write, randread, randwrite or randrw (-rwmix percent reads);
// -qd commands in flight per session. The last stdout line is machine
// readable:
//
//	RESULT ops=N reads=R writes=W errors=E secs=S iops=I mbps=M p50_us=.. p99_us=.. p999_us=.. max_us=..
//
// The ping-pong pair is the TCP ceiling of a QD1 command of the same shape:
// one connection, TCP_NODELAY, -req bytes out, -resp bytes back, one
// outstanding; the server runs as its own process so it can be pinned
// like a target. Exit status: 0 done, 1 failure (a session lost, a command
// failed), 2 usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
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
	url       string
	initiator string
	sessions  int
	qd        int
	bs        int
	rw        string
	rwmix     int
	fua       bool
	digests   bool
	duration  time.Duration
	ppServe   string
	ppAddr    string
	req, resp int
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("costar-loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.initiator, "i", "iqn.2026-11.org.costar:loadgen", "initiator name (sessions differ by ISID)")
	fs.IntVar(&o.sessions, "sessions", 1, "sessions (one connection each), 1..256")
	fs.IntVar(&o.qd, "qd", 32, "commands in flight per session, 1..256")
	fs.IntVar(&o.bs, "bs", 4096, "bytes per command (a multiple of the LU's block size)")
	fs.StringVar(&o.rw, "rw", "randread", "read | write | randread | randwrite | randrw")
	fs.IntVar(&o.rwmix, "rwmix", 70, "percent reads for -rw randrw")
	fs.BoolVar(&o.fua, "fua", false, "writes with FUA (WRITE(16) FUA bit)")
	fs.BoolVar(&o.digests, "digests", false, "HeaderDigest and DataDigest CRC32C")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (at most 1h)")
	fs.StringVar(&o.ppServe, "pingpong-serve", "", "serve TCP ping-pong on this loopback address")
	fs.StringVar(&o.ppAddr, "pingpong", "", "measure TCP ping-pong against this address")
	fs.IntVar(&o.req, "req", 48, "ping-pong request bytes")
	fs.IntVar(&o.resp, "resp", 4144, "ping-pong response bytes")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: costar-loadgen [flags] iscsi://host[:port]/target/lun | -pingpong[-serve] ADDR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.duration <= 0 || o.duration > time.Hour:
		return o, fmt.Errorf("-duration %v: want 0 < d <= 1h", o.duration)
	case o.req < 1 || o.req > 1<<20 || o.resp < 1 || o.resp > 1<<20:
		return o, fmt.Errorf("-req %d -resp %d: want 1..1048576", o.req, o.resp)
	}
	if o.ppServe != "" || o.ppAddr != "" {
		if fs.NArg() != 0 || o.ppServe != "" && o.ppAddr != "" {
			return o, errors.New("-pingpong and -pingpong-serve take no URL and exclude each other")
		}
		return o, nil
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return o, errors.New("one iscsi:// URL required")
	}
	o.url = fs.Arg(0)
	switch {
	case o.sessions < 1 || o.sessions > 256:
		return o, fmt.Errorf("-sessions %d: want 1..256", o.sessions)
	case o.qd < 1 || o.qd > 256:
		return o, fmt.Errorf("-qd %d: want 1..256", o.qd)
	case o.bs < 512 || o.bs > 16<<20 || o.bs%512 != 0:
		return o, fmt.Errorf("-bs %d: want a multiple of 512 up to 16 MiB", o.bs)
	case o.rwmix < 0 || o.rwmix > 100:
		return o, fmt.Errorf("-rwmix %d: want 0..100", o.rwmix)
	}
	switch o.rw {
	case "read", "write", "randread", "randwrite", "randrw":
	default:
		return o, fmt.Errorf("-rw %q: want read, write, randread, randwrite or randrw", o.rw)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "costar-loadgen:", err)
		return exitUsage
	}
	switch {
	case o.ppServe != "":
		err = pingPongServe(ctx, o, stderr)
	case o.ppAddr != "":
		err = pingPongClient(ctx, o, stdout)
	default:
		err = load(ctx, o, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "costar-loadgen:", err)
		return exitFail
	}
	return exitOK
}
