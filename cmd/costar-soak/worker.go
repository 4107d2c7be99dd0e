package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/costar-project/costar/internal/blockpat"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/costar-project/costar/internal/initiator"
)

// outcome is what became of a command.
type outcome int

const (
	outDone    outcome = iota // GOOD
	outNotDone                // the target certainly did not execute it (UA, BUSY: retries exhausted)
	outUnknown                // it may or may not have been executed
)

var errTimedOut = errors.New("no response in time")

// connLost reports whether a send failed because the connection is gone
// (closed by the chaos thread or by the target).
func connLost(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// worker is one session (one I_T nexus: its own initiator name and ISID)
// shared by qd goroutines. A lost connection is logged in again with the
// same ISID, which reinstates the session.
type worker struct {
	id  int
	cfg initiator.Config
	s   *soak

	mu       sync.Mutex
	sess     *initiator.Session
	inflight map[*initiator.Pending]flight
}

// flight is a command in flight: its session and when it was sent.
type flight struct {
	s     *initiator.Session
	start time.Time
}

func newWorker(s *soak, id int) *worker {
	cfg := s.baseCfg
	cfg.Initiator = fmt.Sprintf("%s-%03d", s.o.initiator, id)
	cfg.ISID = [6]byte{0x80, 0x00, 0x50, 0x4b, byte(id >> 8), byte(id)}
	return &worker{id: id, cfg: cfg, s: s, inflight: map[*initiator.Pending]flight{}}
}

// session returns the worker's live session, logging in again when the
// last one ended. Logins are retried for at most dialPatience.
func (w *worker) session(ctx context.Context) (*initiator.Session, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sess != nil && w.sess.Err() == nil {
		return w.sess, nil
	}
	if w.sess != nil {
		w.sess.Close()
		w.sess = nil
		w.s.st.reconnects.Add(1)
	}
	deadline := time.Now().Add(w.s.o.dialPatience)
	var last error
	for try := 0; time.Now().Before(deadline); try++ {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		sess, err := initiator.Dial(dctx, w.cfg)
		cancel()
		if err == nil {
			w.sess = sess
			return sess, nil
		}
		last = err
		w.s.st.dialFailures.Add(1)
		if ctx.Err() != nil {
			break
		}
		time.Sleep(min(time.Duration(try+1)*50*time.Millisecond, time.Second))
	}
	return nil, fmt.Errorf("session %d: could not log in for %v: %w", w.id, w.s.o.dialPatience, last)
}

// current is the live session, or nil.
func (w *worker) current() *initiator.Session {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sess
}

// disconnect drops the connection abruptly (no logout), mid-I/O.
func (w *worker) disconnect() bool {
	w.mu.Lock()
	s := w.sess
	w.mu.Unlock()
	if s == nil {
		return false
	}
	s.Close()
	return true
}

func (w *worker) track(p *initiator.Pending, s *initiator.Session, start time.Time) {
	w.mu.Lock()
	w.inflight[p] = flight{s, start}
	w.mu.Unlock()
}

func (w *worker) untrack(p *initiator.Pending) {
	w.mu.Lock()
	delete(w.inflight, p)
	w.mu.Unlock()
}

// pick returns a random command in flight.
func (w *worker) pick(r *rand.Rand) (*initiator.Pending, *initiator.Session) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.inflight) == 0 {
		return nil, nil
	}
	i := r.IntN(len(w.inflight))
	for p, f := range w.inflight {
		if i == 0 {
			return p, f.s
		}
		i--
	}
	return nil, nil
}

// inflightOn lists the commands in flight on session s sent before t.
func (w *worker) inflightOn(s *initiator.Session, t time.Time) []*initiator.Pending {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ps []*initiator.Pending
	for p, f := range w.inflight {
		if f.s == s && f.start.Before(t) {
			ps = append(ps, p)
		}
	}
	return ps
}

// clearedBefore gives up the commands sent on s before t: a LUN RESET
// (or another initiator's clearing) aborted them, and with TAS=0 the
// target sends no response for them. Their outcome is unknown.
func (w *worker) clearedBefore(s *initiator.Session, t time.Time) {
	for _, p := range w.inflightOn(s, t) {
		if s.Forget(p, errAborted) {
			w.s.st.cleared.Add(1)
		}
	}
}

// maxTries bounds retries after UNIT ATTENTION, BUSY and TASK SET FULL.
const maxTries = 8

// exec runs one command until it has an outcome.
func (w *worker) exec(ctx context.Context, cdb, out []byte, readLen uint32) (initiator.Response, outcome) {
	st := &w.s.st
	for try := 0; try < maxTries; try++ {
		s, err := w.session(ctx)
		if err != nil {
			w.s.fatal(err)
			return initiator.Response{}, outNotDone
		}
		start := time.Now()
		p, err := s.Start(ctx, w.s.o.lun, cdb, out, readLen)
		if err != nil {
			if errors.Is(err, initiator.ErrClosed) {
				continue // not sent: log in again and retry
			}
			if !connLost(err) {
				st.note(&st.cmdErrors, "send: %v", err)
			}
			return initiator.Response{}, outUnknown // perhaps partly sent
		}
		w.track(p, s, start)
		resp, err := w.wait(ctx, s, p)
		w.untrack(p)
		if err != nil {
			if !errors.Is(err, initiator.ErrClosed) && !errors.Is(err, initiator.ErrForgotten) {
				st.note(&st.cmdErrors, "%v", err)
			}
			return resp, outUnknown
		}
		switch resp.Status {
		case initiator.StatusGood:
			w.s.lat.Add(time.Since(start))
			return resp, outDone
		case initiator.StatusCheckCondition:
			if sd, ok := resp.SenseData(); ok && sd.Key == initiator.KeyUnitAttention {
				st.unitAttentions.Add(1)
				if sd.ASC == 0x29 || sd.ASC == 0x2f { // reset, or commands cleared by another initiator
					w.clearedBefore(s, start)
				}
				continue // not executed: retry
			}
			st.note(&st.cmdErrors, "cdb %x: %v", cdb[0], resp)
			return resp, outUnknown
		case initiator.StatusBusy, initiator.StatusTaskSetFull:
			st.busy.Add(1)
			time.Sleep(time.Duration(try+1) * time.Millisecond)
			continue
		case initiator.StatusTaskAborted:
			st.taskAborted.Add(1)
			return resp, outUnknown
		default:
			st.note(&st.cmdErrors, "cdb %x: status %#x", cdb[0], resp.Status)
			return resp, outUnknown
		}
	}
	return initiator.Response{}, outNotDone
}

// wait waits for p's response for at most cmdTimeout; an overdue command
// is aborted (ABORT TASK) and given up.
func (w *worker) wait(ctx context.Context, s *initiator.Session, p *initiator.Pending) (initiator.Response, error) {
	t := time.NewTimer(w.s.o.cmdTimeout)
	defer t.Stop()
	select {
	case <-p.Done():
		return p.Wait(context.WithoutCancel(ctx))
	case <-t.C:
	case <-ctx.Done():
	}
	w.s.st.timeouts.Add(1)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	_, _ = s.AbortTask(actx, p)
	cancel()
	s.Forget(p, errTimedOut)
	return p.Wait(context.WithoutCancel(ctx)) // done now: answered or forgotten
}

// ioSizes are the transfer lengths in blocks, drawn uniformly: mostly
// small, some large enough to need R2Ts.
var ioSizes = [...]uint64{1, 1, 2, 4, 8, 8, 8, 16, 32, 64, 128, 512}

// loop issues verified I/O until the run stops.
func (w *worker) loop(ctx context.Context, slot int) {
	r := rand.New(rand.NewPCG(uint64(w.id), uint64(slot)))
	bs := uint64(w.s.blockSize)
	buf := make([]byte, 512*bs)
	for i := uint64(0); i < w.s.o.maxOps && !w.s.stopping(); i++ {
		if ctx.Err() != nil {
			return
		}
		x := r.IntN(100)
		if x < w.s.o.syncPct {
			cdb := make([]byte, 10)
			cdb[0] = 0x35 // SYNCHRONIZE CACHE(10), whole LU
			if _, oc := w.exec(ctx, cdb, nil, 0); oc == outDone {
				w.s.st.syncs.Add(1)
			}
			continue
		}
		write := x < w.s.o.syncPct+w.s.o.writePct
		n := ioSizes[r.IntN(len(ioSizes))]
		lba, ok := w.s.m.lock(r, n, write)
		if !ok {
			w.s.st.lockMisses.Add(1)
			continue
		}
		if write {
			w.write(ctx, r, lba, n, buf[:n*bs])
		} else {
			w.read(ctx, lba, n)
		}
	}
}

func (w *worker) write(ctx context.Context, r *rand.Rand, lba, n uint64, buf []byte) {
	bs := uint64(w.s.blockSize)
	seq := w.s.seq.Add(1)
	for i := uint64(0); i < n; i++ {
		blockpat.Fill(buf[i*bs:(i+1)*bs], lba+i, seq, uint32(w.id))
	}
	cdb := initiator.Write16(lba, uint32(n))
	if r.IntN(10) == 0 {
		cdb[1] |= 0x08 // FUA
	}
	_, oc := w.exec(ctx, cdb, buf, 0)
	switch oc {
	case outDone:
		w.s.m.writeAcked(lba, n, seq)
		w.s.st.writes.Add(1)
		w.s.st.writeBlocks.Add(int64(n))
	case outNotDone:
		w.s.m.unlock(lba, n)
	default:
		w.s.m.writeUnknown(lba, n, seq)
		w.s.st.unknownWrites.Add(1)
	}
}

func (w *worker) read(ctx context.Context, lba, n uint64) {
	defer w.s.m.unlock(lba, n)
	bs := uint64(w.s.blockSize)
	resp, oc := w.exec(ctx, initiator.Read16(lba, uint32(n)), nil, uint32(n*bs))
	if oc != outDone {
		return
	}
	if uint64(len(resp.Data)) != n*bs {
		w.s.st.note(&w.s.st.cmdErrors, "read lba %d: %d bytes for %d blocks", lba, len(resp.Data), n)
		return
	}
	w.s.st.reads.Add(1)
	w.s.verify(lba, n, resp.Data)
}
