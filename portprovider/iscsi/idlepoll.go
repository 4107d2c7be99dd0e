package iscsi

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Idle polling: a connection with no command in flight has just answered
// its last one, and at queue depth 1 the initiator's next command follows
// within tens of microseconds. Parking the reader in the netpoller lets the
// CPU go idle, and on a VM waking a halted vCPU costs more than the round
// trip itself (unpinned 4 KiB QD1 reads: 8.4–12.6k IOPS parked, 19–21.6k
// polling for 50 µs, at fewer CPU seconds per command: BENCHMARKS.md). So
// the reader first reads the socket without parking for up to
// Config.IdlePoll.
//
// It is bounded three ways: a connection whose last pollMisses polls found
// nothing skips the next 1, 2, 4 ... maxPollBackoff idle reads (an idle
// or slow initiator costs almost nothing; a QD1 stream whose initiator
// is late now and then keeps polling); at most GOMAXPROCS-1 readers poll at
// once, so one P is always left for the rest of the daemon (none with
// GOMAXPROCS=1, where a poll would only delay the initiator sharing our
// CPU); and a poll never outlasts its window.

// DefaultIdlePoll is Config.IdlePoll's default.
const DefaultIdlePoll = 50 * time.Microsecond

// pollMisses empty polls in a row start the backoff.
const pollMisses = 4

// maxPollBackoff bounds how many idle reads a connection skips polling
// after polls that found nothing.
const maxPollBackoff = 64

// pollers counts the readers polling now, server-wide.
type pollers struct {
	n   atomic.Int32
	max int32
}

func newPollers() *pollers {
	return &pollers{max: int32(runtime.GOMAXPROCS(0) - 1)}
}

func (p *pollers) acquire() bool {
	if p.n.Add(1) > p.max {
		p.n.Add(-1)
		return false
	}
	return true
}

func (p *pollers) release() { p.n.Add(-1) }

// pollReader is the connection's socket as its bufio.Reader sees it.
type pollReader struct {
	c       *conn
	window  time.Duration // 0: never poll
	misses  int           // empty polls in a row
	backoff int           // idle reads skipped after the last empty poll
	skip    int           // idle reads left to skip

	// readOnce's arguments and results (bound once: no closure per read).
	buf  []byte
	n    int
	err  error
	read func(fd uintptr) bool
}

func newPollReader(c *conn, window time.Duration) *pollReader {
	r := &pollReader{c: c, window: max(window, 0)}
	r.read = r.readOnce
	return r
}

func (r *pollReader) Read(b []byte) (int, error) {
	if r.window > 0 && r.c.raw != nil && r.c.ffp.Load() && r.c.noneInFlight() {
		if r.skip > 0 {
			r.skip--
		} else if n, ok := r.poll(b); ok {
			return n, nil
		}
	}
	return r.c.nc.Read(b)
}

// poll reads b without parking until data comes or the window ends. ok
// false: nothing came (or the read failed: the parked read reports it).
func (r *pollReader) poll(b []byte) (n int, ok bool) {
	p := r.c.srv.pollers
	if !p.acquire() {
		return 0, false
	}
	defer p.release()
	end := time.Now().Add(r.window)
	r.buf = b
	defer func() { r.buf = nil }()
	for {
		if err := r.c.raw.Read(r.read); err != nil {
			return 0, false
		}
		if r.n > 0 {
			r.misses, r.backoff = 0, 0
			return r.n, true
		}
		// EOF (0, nil) and errors go to the parked read, which reports them.
		if !errors.Is(r.err, unix.EAGAIN) || time.Now().After(end) {
			break
		}
	}
	if r.misses++; r.misses >= pollMisses {
		r.backoff = min(max(2*r.backoff, 1), maxPollBackoff)
		r.skip = r.backoff
	}
	return 0, false
}

// readOnce is poll's syscall.RawConn callback: one read that never parks.
func (r *pollReader) readOnce(fd uintptr) bool {
	for {
		n, err := unix.Read(int(fd), r.buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		r.n, r.err = max(n, 0), err
		return true
	}
}

// noneInFlight reports whether the connection has no command in progress.
func (c *conn) noneInFlight() bool {
	c.tmu.Lock()
	n := len(c.tasks)
	c.tmu.Unlock()
	return n == 0
}
