package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/internal/latency"
)

// session is one logged-in session and its latencies.
type session struct {
	s *initiator.Session
	h latency.Hist
}

// counts are the outcomes of all sessions.
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

	// Each session's commands run on one goroutine of their own (engine.go).
	raws := make([]*initiator.Raw, len(sessions))
	for i, ss := range sessions {
		if raws[i], err = ss.s.Detach(); err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
	}
	var c counts
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(o.duration)
	for si, ss := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := newEngine(raws[si], o, u.LUN, bsz, span, deadline, uint64(si), ss, &c)
			if err := e.run(); err != nil {
				c.fail(fmt.Errorf("session %d: %w", si, err))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var s latency.Summary
	for _, ss := range sessions {
		s.Merge(&ss.h)
	}
	reads, writes, nerr := c.reads.Load(), c.writes.Load(), c.errors.Load()
	fmt.Fprintln(stdout, result(reads+writes, reads, writes, nerr, elapsed, o.bs, &s))
	if p := c.firstErr.Load(); p != nil {
		return fmt.Errorf("%d commands failed, the first: %w", nerr, *p)
	}
	return nil
}

func result(ops, reads, writes, nerr uint64, elapsed time.Duration, bs int, s *latency.Summary) string {
	secs := elapsed.Seconds()
	iops := float64(ops) / secs
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }
	return fmt.Sprintf("RESULT ops=%d reads=%d writes=%d errors=%d secs=%.3f iops=%.0f mbps=%.1f p50_us=%s p99_us=%s p999_us=%s max_us=%s",
		ops, reads, writes, nerr, secs, iops, iops*float64(bs)/1e6, us(s.Percentile(50)), us(s.Percentile(99)),
		us(s.Percentile(99.9)), us(s.Max()))
}
