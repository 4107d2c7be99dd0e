package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/initiator"
)

var errAborted = errors.New("aborted by ABORT TASK or LUN RESET")

// chaosKinds are the disruptions, taken in turn.
var chaosKinds = []string{"abort", "lun-reset", "disconnect", "reinstate", "view"}

// chaosStats counts what the chaos thread did and what the target said.
type chaosStats struct {
	abortComplete, abortNoTask, abortOther   atomic.Int64
	resetComplete, resetOther                atomic.Int64
	disconnects, reinstated, reinstateFailed atomic.Int64
	viewChanges, viewFailed                  atomic.Int64
	nopMuted, nopDropped, nopNotDropped      atomic.Int64
	nopMaxDrop                               atomic.Int64 // ns
}

// parseChaos checks a comma-separated list of chaos kinds ("" = none,
// "all" = every kind).
func parseChaos(s string) ([]string, error) {
	switch s {
	case "", "none":
		return nil, nil
	case "all":
		return append(append([]string(nil), chaosKinds...), "nop"), nil
	}
	var out []string
	for _, k := range strings.Split(s, ",") {
		found := k == "nop"
		for _, c := range chaosKinds {
			found = found || c == k
		}
		if !found {
			return nil, fmt.Errorf("unknown chaos kind %q (want %s, nop, all or none)", k, strings.Join(chaosKinds, ", "))
		}
		out = append(out, k)
	}
	return out, nil
}

// chaos disrupts the running load every interval until the run stops.
func (s *soak) chaos(ctx context.Context, kinds []string) {
	r := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	for i := 0; i < s.o.maxChaos && !s.stopping(); i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.o.chaosEvery/2 + time.Duration(r.Int64N(int64(s.o.chaosEvery)))):
		}
		if s.stopping() {
			return
		}
		kind := kinds[i%len(kinds)]
		w := s.workers[r.IntN(len(s.workers))]
		switch kind {
		case "abort":
			s.chaosAbort(ctx, r, w)
		case "lun-reset":
			s.chaosReset(ctx, w)
		case "disconnect":
			if w.disconnect() {
				s.cs.disconnects.Add(1)
			}
		case "reinstate":
			s.chaosReinstate(ctx, w)
		case "view":
			s.chaosView(ctx)
		}
	}
}

func (s *soak) chaosAbort(ctx context.Context, r *rand.Rand, w *worker) {
	p, sess := w.pick(r)
	if p == nil {
		return
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	code, err := sess.AbortTask(tctx, p)
	cancel()
	switch {
	case err != nil:
		s.cs.abortOther.Add(1)
	case code == initiator.TMFComplete:
		s.cs.abortComplete.Add(1)
		sess.Forget(p, errAborted) // the target sends no response for it
	case code == initiator.TMFTaskNotExist:
		s.cs.abortNoTask.Add(1) // it completed first
	default:
		s.cs.abortOther.Add(1)
		s.st.note(&s.st.cmdErrors, "ABORT TASK answered %d", code)
	}
}

func (s *soak) chaosReset(ctx context.Context, w *worker) {
	sess := w.current()
	if sess == nil {
		return
	}
	sent := time.Now()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	code, err := sess.TaskManagement(tctx, initiator.TMFLUNReset, s.o.lun)
	cancel()
	if err != nil || code != initiator.TMFComplete {
		s.cs.resetOther.Add(1)
		if err == nil {
			s.st.note(&s.st.cmdErrors, "LUN RESET answered %d", code)
		}
		return
	}
	s.cs.resetComplete.Add(1)
	// The reset aborted every task of the LU, on every nexus; with TAS=0
	// none gets a response. A real initiator learns it from the unit
	// attention on its next command; ours would wait for the timeout
	// when every queue slot is stuck.
	for _, o := range s.workers {
		if cur := o.current(); cur != nil {
			o.clearedBefore(cur, sent)
		}
	}
}

// chaosReinstate logs in with a running worker's initiator name and
// ISID: the target must end the old session (its commands in flight are
// then of unknown outcome) and accept the new one, which then logs out.
func (s *soak) chaosReinstate(ctx context.Context, w *worker) {
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sess, err := initiator.Dial(tctx, w.cfg)
	if err != nil {
		s.cs.reinstateFailed.Add(1)
		s.st.note(&s.st.cmdErrors, "reinstating session %d: %v", w.id, err)
		return
	}
	s.cs.reinstated.Add(1)
	_ = sess.Logout(tctx)
}

// chaosView adds or removes the second LU's view, so every session gets
// REPORTED LUNS DATA HAS CHANGED.
func (s *soak) chaosView(ctx context.Context) {
	if s.api == nil || s.o.viewLU == "" {
		return
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if s.viewEntry < 0 {
		var v api.View
		lun := int(s.o.viewLUN)
		v, err = s.api.AddView(tctx, api.AddViewRequest{GUID: s.o.viewLU, LUN: &lun})
		if err == nil {
			s.viewEntry = v.Entry
		}
	} else {
		err = s.api.RemoveView(tctx, s.o.viewLU, s.viewEntry)
		if err == nil {
			s.viewEntry = -1
		}
	}
	if err != nil {
		s.cs.viewFailed.Add(1)
		s.st.note(&s.st.cmdErrors, "view change: %v", err)
		return
	}
	s.cs.viewChanges.Add(1)
}

// nopMute logs in sessions that never answer NOP-In and checks the
// target drops each within nopDeadline; it starts one only while the run
// has that long left.
func (s *soak) nopMute(ctx context.Context, until time.Time) {
	for i := 0; i < 100 && time.Until(until) >= s.o.nopDeadline && !s.stopping(); i++ {
		cfg := s.baseCfg
		cfg.Initiator = s.o.initiator + "-mute"
		cfg.ISID = [6]byte{0x80, 0x00, 0x4e, 0x4f, 0x50, byte(i)}
		cfg.IgnoreNOPIn = true
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		sess, err := initiator.Dial(dctx, cfg)
		cancel()
		if err != nil {
			s.st.note(&s.st.cmdErrors, "mute session login: %v", err)
			return
		}
		s.cs.nopMuted.Add(1)
		start := time.Now()
		t := time.NewTimer(s.o.nopDeadline)
		select {
		case <-sess.Done():
			s.cs.nopDropped.Add(1)
			d := int64(time.Since(start))
			for {
				old := s.cs.nopMaxDrop.Load()
				if d <= old || s.cs.nopMaxDrop.CompareAndSwap(old, d) {
					break
				}
			}
		case <-t.C:
			s.cs.nopNotDropped.Add(1)
			s.st.note(&s.st.cmdErrors, "a session that ignored NOP-In was still up after %v", s.o.nopDeadline)
		case <-ctx.Done():
		}
		t.Stop()
		sess.Close()
	}
}
