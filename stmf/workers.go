package stmf

import "time"

// workerIdle is how long an idle worker waits for the next task before it
// exits, so a quiet framework holds no goroutines.
const workerIdle = time.Second

// workers runs tasks on goroutines that outlive one task. A fresh
// goroutine per command starts with a small stack that the LU path grows
// every time (stack copying showed as ~7% of CPU under 4 KiB QD32 load);
// a reused one keeps its grown stack. Hand-off is an unbuffered send that
// only succeeds when a worker is idle, otherwise a new worker starts, so a
// task never waits behind another.
type workers struct {
	ch chan *Task
}

func newWorkers() *workers { return &workers{ch: make(chan *Task)} }

func (w *workers) run(t *Task) {
	t.InlineNoWait = false // a worker may wait
	select {
	case w.ch <- t:
	default:
		go w.loop(t)
	}
}

func (w *workers) loop(t *Task) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		t.run()
		idle.Reset(workerIdle)
		select {
		case t = <-w.ch:
		case <-idle.C:
			return
		}
	}
}
