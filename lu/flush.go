package lu

import "sync"

// flusher coalesces concurrent cache flushes: callers that arrive while a
// flush is running share the next one (which starts after the running one
// ends, so it covers every write they completed), instead of each issuing
// its own fdatasync.
type flusher struct {
	mu   sync.Mutex
	cur  *flushRound // running round, nil when idle
	next *flushRound // round that will run after cur, collecting callers
	do   func() error
}

type flushRound struct {
	done chan struct{}
	err  error
}

// busy reports whether a round is running: a durable write that finds
// one joins the next round instead of flushing on its own (durable.go).
func (f *flusher) busy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur != nil
}

func (f *flusher) flush() error {
	f.mu.Lock()
	if f.cur == nil {
		r := f.next // callers may be waiting for a round nobody started yet
		if r == nil {
			r = &flushRound{done: make(chan struct{})}
		}
		f.next = nil
		return f.run(r)
	}
	if f.next == nil {
		f.next = &flushRound{done: make(chan struct{})}
	}
	r, prev := f.next, f.cur
	f.mu.Unlock()
	<-prev.done
	f.mu.Lock()
	if f.cur == nil && f.next == r {
		f.next = nil
		return f.run(r)
	}
	f.mu.Unlock()
	<-r.done
	return r.err
}

// run executes round r; f.mu is held on entry and released.
func (f *flusher) run(r *flushRound) error {
	f.cur = r
	f.mu.Unlock()
	r.err = f.do()
	f.mu.Lock()
	f.cur = nil
	f.mu.Unlock()
	close(r.done)
	return r.err
}
