package daemon

import (
	"log/slog"
	"runtime/debug"
	"time"
)

// reclaimInterval is how often the daemon looks for the end of its last
// session.
const reclaimInterval = 5 * time.Second

// reclaimer hands the memory of a burst of sessions back to the kernel
// once the last session has ended. The Go runtime alone keeps freed heap
// until its next forced GC (up to 2 minutes) and returns it slowly, so an
// idle target would go on looking as large as at its peak.
type reclaimer struct {
	sessions func() int // sessions now
	free     func()     // debug.FreeOSMemory
	log      *slog.Logger
	busy     bool // there were sessions at the last tick
}

// tick frees memory when the target went from serving sessions to none.
func (r *reclaimer) tick() bool {
	busy := r.sessions() > 0
	was := r.busy
	r.busy = busy
	if !was || busy {
		return false
	}
	r.free()
	r.log.Debug("last session ended: returned free memory to the kernel")
	return true
}

// freeTwice runs two collections: the first only moves sync.Pool
// contents (the connections' buffers) to the victim cache, the second
// frees them, and each returns what is free to the kernel.
func freeTwice() {
	debug.FreeOSMemory()
	debug.FreeOSMemory()
}

// startReclaimer runs the reclaimer until the returned stop is called.
func (d *Daemon) startReclaimer() (stop func()) {
	r := &reclaimer{sessions: func() int { return len(d.fw.Sessions()) }, free: freeTwice, log: d.log}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(reclaimInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.tick()
			}
		}
	}()
	return func() { close(done); <-finished }
}
