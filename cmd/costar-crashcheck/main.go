// Command costar-crashcheck proves that writes an iSCSI initiator was told
// are durable survive a crash, with dm-log-writes (the method file
// systems are tested with): the LU's backing device is a log-writes
// device that logs every write once it is durable (after a flush, or on
// completion for FUA), and marks put in between.
//
//	costar-crashcheck write  -dev /dev/sdX -dm NAME -mode sync|fua|wcd -journal FILE
//	costar-crashcheck replay -log /dev/LOGDEV -journal FILE
//
// write runs on the initiator's disk: rounds of concurrent O_DIRECT
// writes whose sectors carry (sector, sequence, CRC-32C); then, by mode,
// fdatasync (SYNCHRONIZE CACHE), nothing because every write was FUA
// (O_DSYNC), or nothing because the LU's write cache is disabled (wcd);
// then a mark in the log and in the journal.
//
// replay rebuilds the device from the log entry by entry. At every flush
// or FUA entry (a state a crash may leave) every sector of ours must be
// whole; at every mark every sector the journal acknowledged as durable
// must hold that write. The last stdout line is
//
//	RESULT mode=.. flush_points=N marks=M acked_writes_checked=W sectors_checked=S missing=0 torn=0 unexpected=0
//
// Exit status: 0 pass, 1 a check failed, 2 usage or I/O error.
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprintln(stderr, "usage: costar-crashcheck write|replay [flags] (-h for the flags)")
		return 2
	}
	switch args[0] {
	case "write":
		return runWrite(ctx, args[1:], stdout, stderr)
	case "replay":
		return runReplay(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "costar-crashcheck: unknown command %q (want write or replay)\n", args[0])
	return 2
}

func runWrite(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o writeOptions
	var journal string
	fs := flag.NewFlagSet("costar-crashcheck write", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dev, "dev", "", "the LU's disk on the initiator (/dev/sdX)")
	fs.StringVar(&o.dm, "dm", "", "dm-log-writes device name under the LU")
	fs.StringVar(&o.mode, "mode", "sync", "how writes become durable: sync (fdatasync), fua (O_DSYNC) or wcd (write cache disabled)")
	fs.IntVar(&o.rounds, "rounds", 100, "rounds (each ends with a mark)")
	fs.IntVar(&o.par, "par", 4, "concurrent writes per round")
	fs.Uint64Var(&o.region, "region", 16<<20, "bytes of the LU written, from sector 0")
	fs.Uint64Var(&o.sectorSize, "sector-size", 512, "the LU's logical block size")
	fs.StringVar(&journal, "journal", "", "journal file to write")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case o.dev == "" || o.dm == "" || journal == "":
		fmt.Fprintln(stderr, "costar-crashcheck write: -dev, -dm and -journal are required")
		return 2
	case o.mode != "sync" && o.mode != "fua" && o.mode != "wcd":
		fmt.Fprintf(stderr, "costar-crashcheck write: -mode %q: want sync, fua or wcd\n", o.mode)
		return 2
	case o.rounds < 1 || o.rounds > 100000 || o.par < 1 || o.par > 64:
		fmt.Fprintln(stderr, "costar-crashcheck write: -rounds 1..100000, -par 1..64")
		return 2
	case o.sectorSize < 512 || o.sectorSize > unit || unit%o.sectorSize != 0:
		fmt.Fprintln(stderr, "costar-crashcheck write: -sector-size must divide 4096")
		return 2
	case o.region < 16*unit*uint64(o.par) || o.region%unit != 0:
		fmt.Fprintln(stderr, "costar-crashcheck write: -region too small or not a multiple of 4096")
		return 2
	}
	f, err := os.Create(journal)
	if err != nil {
		fmt.Fprintln(stderr, "costar-crashcheck:", err)
		return 2
	}
	writes, marks, err := workload(ctx, o, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	fmt.Fprintf(stdout, "WRITE mode=%s writes=%d marks=%d\n", o.mode, writes, marks)
	if err != nil {
		fmt.Fprintln(stderr, "costar-crashcheck write:", err)
		return 1
	}
	return 0
}

func runReplay(args []string, stdout, stderr io.Writer) int {
	var logPath, journal, mode string
	var ss uint64
	var off int64
	fs := flag.NewFlagSet("costar-crashcheck replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&logPath, "log", "", "the dm-log-writes log device (or a copy of it)")
	fs.StringVar(&journal, "journal", "", "the journal the write step kept")
	fs.Uint64Var(&ss, "sector-size", 512, "the LU's logical block size")
	fs.Int64Var(&off, "data-offset", -1, "byte offset of the LU's sector 0 on the backing device (-1: find it)")
	fs.StringVar(&mode, "mode", "", "label for the RESULT line")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if logPath == "" || journal == "" {
		fmt.Fprintln(stderr, "costar-crashcheck replay: -log and -journal are required")
		return 2
	}
	jf, err := os.Open(journal)
	if err != nil {
		fmt.Fprintln(stderr, "costar-crashcheck:", err)
		return 2
	}
	entries, err := readJournal(jf)
	jf.Close()
	if err != nil {
		fmt.Fprintln(stderr, "costar-crashcheck:", err)
		return 2
	}
	lf, err := os.Open(logPath)
	if err != nil {
		fmt.Fprintln(stderr, "costar-crashcheck:", err)
		return 2
	}
	defer lf.Close()
	res, err := replay(lf, ss, off, entries)
	for _, e := range res.examples {
		fmt.Fprintln(stdout, "  !", e)
	}
	fmt.Fprintf(stdout, "replay: %d log entries (%d writes, %d flushes, %d FUA, %d discards); LU data at byte %d of the device\n",
		res.entries, res.writes, res.flushes, res.fuas, res.discards, res.dataOffset)
	fmt.Fprintf(stdout, "RESULT mode=%s flush_points=%d marks=%d acked_writes_checked=%d sectors_checked=%d missing=%d torn=%d unexpected=%d\n",
		mode, res.flushPoints, res.marks, res.writesChecked, res.sectorsChecked, res.missing, res.torn, res.unexpected)
	if err != nil {
		fmt.Fprintln(stderr, "costar-crashcheck replay:", err)
		if errors.Is(err, errLogShort) {
			return 1
		}
		return 2
	}
	if res.missing+res.torn+res.unexpected > 0 || res.marks == 0 || res.writesChecked == 0 {
		return 1
	}
	return 0
}
