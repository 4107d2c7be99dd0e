package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/internal/initiator"
)

// session is one logged-in session and what its workers share.
type session struct {
	s      *initiator.Session
	h      hist
	cursor atomic.Uint64 // next byte offset of sequential I/O
}

// counts are the outcomes of all workers.
type counts struct {
	reads, writes, errors atomic.Uint64
	firstErr              atomic.Pointer[error]
}

func (c *counts) fail(err error) {
	c.errors.Add(1)
	c.firstErr.CompareAndSwap(nil, &err)
}

func load(ctx context.Context, o options, stdout, stderr io.Writer) error {
	u, err := initiator.ParseURL(o.url)
	if err != nil {
		return err
	}
	// Every step is bounded: logging in, the run, logging out.
	ctx, cancel := context.WithTimeout(ctx, o.duration+2*time.Minute)
	defer cancel()
	sessions := make([]*session, 0, o.sessions)
	defer func() {
		var wg sync.WaitGroup
		for _, ss := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer lcancel()
				if ss.s.Logout(lctx) != nil {
					ss.s.Close()
				}
			}()
		}
		wg.Wait()
	}()
	var blocks uint64
	var bsz uint32
	for i := range o.sessions {
		lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
		s, err := initiator.Dial(lctx, initiator.Config{Portal: u.Portal, Target: u.Target, Initiator: o.initiator,
			ISID: [6]byte{0x80, 0x00, 0x4c, 0x47, byte(i >> 8), byte(i)}, Digests: o.digests})
		if err == nil {
			_, err = s.ClearUnitAttentions(lctx, u.LUN)
			if err == nil && i == 0 {
				blocks, bsz, err = s.Capacity(lctx, u.LUN)
			}
			if err != nil {
				s.Close()
			}
		}
		lcancel()
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		sessions = append(sessions, &session{s: s})
	}
	if bsz == 0 || o.bs%int(bsz) != 0 || blocks*uint64(bsz) < uint64(o.bs) {
		return fmt.Errorf("-bs %d does not fit the LU (%d blocks of %d bytes)", o.bs, blocks, bsz)
	}
	span := blocks * uint64(bsz) / uint64(o.bs) // commands that fit the LU
	fmt.Fprintf(stderr, "costar-loadgen: %d sessions x QD%d, %s %d bytes, %v, LU %d blocks of %d\n",
		o.sessions, o.qd, o.rw, o.bs, o.duration, blocks, bsz)

	var c counts
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(o.duration)
	wctx, wcancel := context.WithDeadline(ctx, deadline.Add(30*time.Second))
	defer wcancel()
	for si, ss := range sessions {
		for w := range o.qd {
			wg.Add(1)
			go func() {
				defer wg.Done()
				worker(wctx, o, u.LUN, bsz, span, ss, deadline, uint64(si)<<32|uint64(w), &c)
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	var s summary
	for _, ss := range sessions {
		s.merge(&ss.h)
	}
	reads, writes, nerr := c.reads.Load(), c.writes.Load(), c.errors.Load()
	fmt.Fprintln(stdout, result(reads+writes, reads, writes, nerr, elapsed, o.bs, &s))
	if p := c.firstErr.Load(); p != nil {
		return fmt.Errorf("%d commands failed, the first: %w", nerr, *p)
	}
	return nil
}

func worker(ctx context.Context, o options, lun uint64, bsz uint32, span uint64, ss *session, deadline time.Time, seed uint64, c *counts) {
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	wbuf := make([]byte, o.bs)
	for i := range wbuf {
		wbuf[i] = byte(i*7) ^ byte(seed)
	}
	nblk := uint32(o.bs / int(bsz))
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var slot uint64
		switch o.rw {
		case "read", "write":
			slot = (ss.cursor.Add(1) - 1) % span
		default:
			slot = rng.Uint64N(span)
		}
		lba := slot * uint64(o.bs) / uint64(bsz)
		write := o.rw == "write" || o.rw == "randwrite" || o.rw == "randrw" && rng.IntN(100) >= o.rwmix
		var cdb []byte
		var out []byte
		var readLen uint32
		if write {
			cdb = initiator.Write16(lba, nblk)
			if o.fua {
				cdb[1] |= 0x08
			}
			out = wbuf
		} else {
			cdb = initiator.Read16(lba, nblk)
			readLen = uint32(o.bs)
		}
		t0 := time.Now()
		r, err := ss.s.Do(ctx, lun, cdb, out, readLen)
		lat := time.Since(t0)
		switch {
		case err != nil:
			if !errors.Is(err, context.DeadlineExceeded) {
				c.fail(err)
			}
			return
		case r.Status != initiator.StatusGood:
			c.fail(fmt.Errorf("LBA %d: %s", lba, r))
			continue
		}
		ss.h.add(lat)
		if write {
			c.writes.Add(1)
		} else {
			c.reads.Add(1)
		}
	}
}

func result(ops, reads, writes, nerr uint64, elapsed time.Duration, bs int, s *summary) string {
	secs := elapsed.Seconds()
	iops := float64(ops) / secs
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }
	return fmt.Sprintf("RESULT ops=%d reads=%d writes=%d errors=%d secs=%.3f iops=%.0f mbps=%.1f p50_us=%s p99_us=%s p999_us=%s max_us=%s",
		ops, reads, writes, nerr, secs, iops, iops*float64(bs)/1e6, us(s.percentile(50)), us(s.percentile(99)),
		us(s.percentile(99.9)), us(time.Duration(s.max)))
}
