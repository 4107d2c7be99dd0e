package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/internal/latency"
)

// runResult is what runLoad measured besides the counters.
type runResult struct {
	elapsed, drain             time.Duration
	baseRSS, baseHWM           uint64
	baseGor                    int
	endRSS                     uint64
	endGor                     int
	endHWM                     uint64
	settled                    time.Duration
	rssBack, gorBack, heapBack bool
	baseHeap, endHeap          uint64
	finalBlocks                uint64
	finalErr                   error
	quarantined                int
	samples, samplingFailures  int
	maxRSS                     uint64
	maxGor                     int
}

// runLoad runs the load and the chaos for the duration, reads the whole
// region back, and waits for the target to return to idle.
func (s *soak) runLoad(ctx context.Context) runResult {
	var res runResult
	mon := &monitor{pid: s.o.pid, api: s.api}
	if err := s.warmup(ctx); err != nil {
		s.fatal(err)
		return res
	}
	if s.o.pid > 0 {
		res.baseRSS, res.baseHWM, _ = procStatus(s.o.pid)
	}
	if s.api != nil {
		res.baseGor, res.baseHeap, _ = mon.goroutines(ctx)
	}
	mctx, mstop := context.WithCancel(ctx)
	var mwg sync.WaitGroup
	mwg.Add(1)
	go func() { defer mwg.Done(); mon.run(mctx, s.o.sampleEvery) }()

	start := time.Now()
	until := start.Add(s.o.duration)
	for i := range s.o.sessions {
		s.workers = append(s.workers, newWorker(s, i))
	}
	var wg sync.WaitGroup
	for _, w := range s.workers {
		for slot := range s.o.qd {
			wg.Add(1)
			go func() { defer wg.Done(); w.loop(ctx, slot) }()
		}
	}
	var cwg sync.WaitGroup
	var kinds []string
	for _, k := range s.o.chaos {
		if k == "nop" {
			cwg.Add(1)
			go func() { defer cwg.Done(); s.nopMute(ctx, until) }()
		} else {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) > 0 {
		cwg.Add(1)
		go func() { defer cwg.Done(); s.chaos(ctx, kinds) }()
	}
	t := time.NewTimer(s.o.duration)
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	s.stop.Store(true)
	res.elapsed = time.Since(start)
	cwg.Wait()
	wg.Wait()
	res.drain = time.Since(start) - res.elapsed
	for _, w := range s.workers {
		if sess := w.current(); sess != nil {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if sess.Logout(lctx) != nil {
				sess.Close()
			}
			cancel()
		}
	}
	if s.viewEntry >= 0 { // leave the configuration as it was
		s.chaosView(context.WithoutCancel(ctx))
	}
	res.quarantined = s.m.quarantined()
	res.finalBlocks, res.finalErr = s.finalCheck(context.WithoutCancel(ctx))

	// Back to idle: every session is gone now.
	settleStart := time.Now()
	for {
		rss, gor, heap := mon.sample(ctx)
		res.endRSS, res.endGor, res.endHeap = rss, gor, heap
		res.rssBack = s.o.pid == 0 || (rss > 0 && rss <= res.baseRSS+s.o.rssTol)
		res.gorBack = s.api == nil || (gor > 0 && gor <= res.baseGor+s.o.gorTol)
		res.heapBack = s.api == nil || heap <= res.baseHeap+s.o.heapTol
		if (res.rssBack && res.gorBack && res.heapBack) || time.Since(settleStart) >= s.o.settle || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.settled = time.Since(settleStart)
	mstop()
	mwg.Wait()
	if s.o.pid > 0 {
		_, res.endHWM, _ = procStatus(s.o.pid)
	}
	mon.mu.Lock()
	res.samples, res.samplingFailures, res.maxRSS, res.maxGor = mon.samples, mon.failures, max(mon.maxRSS, res.endHWM), mon.maxGor
	mon.mu.Unlock()
	return res
}

// finalCheck reads the whole region through a new session and verifies
// every block.
func (s *soak) finalCheck(ctx context.Context) (uint64, error) {
	cfg := s.baseCfg
	cfg.Initiator = s.o.initiator + "-verify"
	cfg.ISID = [6]byte{0x80, 0x00, 0x56, 0x45, 0x52, 0x00}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	sess, err := initiator.Dial(tctx, cfg)
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	if _, err := sess.ClearUnitAttentions(tctx, s.o.lun); err != nil {
		return 0, err
	}
	const chunk = 512
	bs := uint64(s.blockSize)
	var done uint64
	for lba := uint64(0); lba < s.m.blocks; lba += chunk {
		n := min(chunk, s.m.blocks-lba)
		if !s.m.lockRange(lba, n) {
			return done, fmt.Errorf("blocks %d+%d still locked after the run", lba, n)
		}
		var resp initiator.Response
		for try := 0; ; try++ {
			resp, err = sess.Do(tctx, s.o.lun, initiator.Read16(lba, uint32(n)), nil, uint32(n*bs))
			if err != nil || try >= maxTries || resp.Status != initiator.StatusCheckCondition {
				break
			}
			if sd, ok := resp.SenseData(); !ok || sd.Key != initiator.KeyUnitAttention {
				break
			}
		}
		if err == nil && (resp.Status != initiator.StatusGood || uint64(len(resp.Data)) != n*bs) {
			err = fmt.Errorf("reading lba %d+%d: %v (%d bytes)", lba, n, resp, len(resp.Data))
		}
		if err != nil {
			s.m.unlock(lba, n)
			return done, err
		}
		s.verify(lba, n, resp.Data)
		s.m.unlock(lba, n)
		done += n
	}
	_ = sess.Logout(tctx)
	return done, nil
}

func mib(b uint64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// report prints the summary and the RESULT line and returns the exit code.
func (s *soak) report(ctx context.Context, r runResult, w io.Writer) int {
	st, cs := &s.st, &s.cs
	ops := st.reads.Load() + st.writes.Load() + st.syncs.Load()
	secs := r.elapsed.Seconds()
	fmt.Fprintf(w, "soak: %d sessions x QD%d, %s, %v, block size %d, region %d blocks\n",
		s.o.sessions, s.o.qd, s.o.url.Target, r.elapsed.Round(time.Second), s.blockSize, s.m.blocks)
	fmt.Fprintf(w, "  I/O: %d reads, %d writes (%d blocks), %d syncs; %.0f IOPS; %d blocks verified (%d in the final pass)\n",
		st.reads.Load(), st.writes.Load(), st.writeBlocks.Load(), st.syncs.Load(), float64(ops)/secs, st.blocksVerified.Load(), r.finalBlocks)
	var lat latency.Summary
	lat.Merge(&s.lat)
	p50, p99, p999, pmax := lat.Percentile(50).Microseconds(), lat.Percentile(99).Microseconds(), lat.Percentile(99.9).Microseconds(), lat.Max().Microseconds()
	fmt.Fprintf(w, "  latency: p50 %d us, p99 %d us, p99.9 %d us, max %d us\n", p50, p99, p999, pmax)
	fmt.Fprintf(w, "  outcomes: %d writes of unknown outcome (%d blocks quarantined), %d unit attentions retried, %d BUSY/TASK SET FULL, %d TASK ABORTED, %d cleared by a reset, %d timed out, %d errors; drained in %v\n",
		st.unknownWrites.Load(), r.quarantined, st.unitAttentions.Load(), st.busy.Load(), st.taskAborted.Load(), st.cleared.Load(), st.timeouts.Load(), st.cmdErrors.Load(), r.drain.Round(time.Second/10))
	fmt.Fprintf(w, "  chaos: ABORT TASK %d complete / %d no such task / %d other; LUN RESET %d complete / %d other; %d disconnects; %d reinstatements (%d failed); %d view changes (%d failed); %d reconnects\n",
		cs.abortComplete.Load(), cs.abortNoTask.Load(), cs.abortOther.Load(), cs.resetComplete.Load(), cs.resetOther.Load(),
		cs.disconnects.Load(), cs.reinstated.Load(), cs.reinstateFailed.Load(), cs.viewChanges.Load(), cs.viewFailed.Load(), st.reconnects.Load())
	fmt.Fprintf(w, "  NOP-In ignored: %d sessions, %d dropped by the target (slowest after %v), %d not dropped within %v\n",
		cs.nopMuted.Load(), cs.nopDropped.Load(), time.Duration(cs.nopMaxDrop.Load()).Round(time.Second/10), cs.nopNotDropped.Load(), s.o.nopDeadline)
	if s.o.pid > 0 || s.api != nil {
		fmt.Fprintf(w, "  target: RSS idle %s MiB, peak %s MiB (VmHWM %s MiB), after %s MiB; live heap idle %s MiB, after %s MiB; goroutines idle %d, peak %d, after %d; settled in %v (tolerance +%s MiB RSS, +%s MiB heap, +%d goroutines; %d samples, %d unreadable)\n",
			mib(r.baseRSS), mib(r.maxRSS), mib(r.endHWM), mib(r.endRSS), mib(r.baseHeap), mib(r.endHeap), r.baseGor, r.maxGor, r.endGor, r.settled.Round(time.Second/10),
			mib(s.o.rssTol), mib(s.o.heapTol), s.o.gorTol, r.samples, r.samplingFailures)
	}
	st.mu.Lock()
	for _, e := range st.examples {
		fmt.Fprintln(w, "  !", e)
	}
	st.mu.Unlock()

	var fails []string
	if n := st.mismatches.Load(); n > 0 {
		fails = append(fails, fmt.Sprintf("%d mismatches", n))
	}
	if n := st.lost.Load(); n > 0 {
		fails = append(fails, fmt.Sprintf("%d lost acknowledged writes", n))
	}
	if r.finalErr != nil {
		fails = append(fails, "final read: "+r.finalErr.Error())
	}
	if s.fatalErr != nil {
		fails = append(fails, s.fatalErr.Error())
	}
	if n := cs.nopNotDropped.Load(); n > 0 {
		fails = append(fails, fmt.Sprintf("%d NOP-ignoring sessions not dropped", n))
	}
	if !r.rssBack {
		fails = append(fails, fmt.Sprintf("RSS did not return to idle (%s MiB > %s + %s MiB) within %v", mib(r.endRSS), mib(r.baseRSS), mib(s.o.rssTol), s.o.settle))
	}
	if !r.heapBack {
		fails = append(fails, fmt.Sprintf("live heap did not return to idle (%s MiB > %s + %s MiB) within %v", mib(r.endHeap), mib(r.baseHeap), mib(s.o.heapTol), s.o.settle))
	}
	if !r.gorBack {
		fails = append(fails, fmt.Sprintf("goroutines did not return to idle (%d > %d + %d) within %v", r.endGor, r.baseGor, s.o.gorTol, s.o.settle))
	}
	if s.o.rssLimit > 0 && r.maxRSS > s.o.rssLimit {
		fails = append(fails, fmt.Sprintf("peak RSS %s MiB above the limit %s MiB", mib(r.maxRSS), mib(s.o.rssLimit)))
	}
	if ops == 0 {
		fails = append(fails, "no command completed")
	}
	if ctx.Err() != nil {
		fails = append(fails, "interrupted")
	}
	verdict := "PASS"
	if len(fails) > 0 {
		verdict = "FAIL"
		fmt.Fprintln(w, "soak: FAIL:", strings.Join(fails, "; "))
	}
	fmt.Fprintf(w, "RESULT verdict=%s sessions=%d qd=%d secs=%.0f ops=%d iops=%.0f mismatches=%d lost=%d blocks_verified=%d final_blocks=%d unknown_writes=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d rss_idle_mib=%s rss_peak_mib=%s rss_after_mib=%s heap_after_mib=%s goroutines_idle=%d goroutines_peak=%d goroutines_after=%d aborts=%d resets=%d disconnects=%d reinstatements=%d view_changes=%d nop_dropped=%d\n",
		verdict, s.o.sessions, s.o.qd, secs, ops, float64(ops)/secs, st.mismatches.Load(), st.lost.Load(), st.blocksVerified.Load(), r.finalBlocks,
		st.unknownWrites.Load(), p50, p99, p999, pmax,
		mib(r.baseRSS), mib(r.maxRSS), mib(r.endRSS), mib(r.endHeap), r.baseGor, r.maxGor, r.endGor,
		cs.abortComplete.Load()+cs.abortNoTask.Load(), cs.resetComplete.Load(), cs.disconnects.Load(), cs.reinstated.Load(), cs.viewChanges.Load(), cs.nopDropped.Load())
	if len(fails) > 0 {
		return exitFail
	}
	return exitOK
}
