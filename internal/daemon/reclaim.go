package daemon

import (
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// reclaimInterval is how often an idle daemon looks for memory to give
// back.
const reclaimInterval = 2 * time.Second

// reclaimAfter is how much must have been allocated since the last
// reclaim before an idle daemon runs another (so an idle daemon does not
// collect every tick).
const reclaimAfter = 4 << 20

// reclaimer hands the memory of a burst of sessions back to the kernel
// once no session is left. The Go runtime alone keeps freed heap until
// its next forced GC (up to 2 minutes) and returns it slowly, so an idle
// target would go on looking as large as at its peak.
type reclaimer struct {
	sessions  func() int    // sessions now
	allocated func() uint64 // bytes allocated since the start (cumulative)
	free      func()        // freeTwice
	log       *slog.Logger
	last      uint64 // allocated at the last reclaim
}

// tick reclaims when no session is open and enough was allocated since
// the last reclaim (a burst of sessions, however short, between ticks).
func (r *reclaimer) tick() bool {
	if r.sessions() > 0 {
		return false
	}
	now := r.allocated()
	if now-r.last < reclaimAfter {
		return false
	}
	r.free()
	r.log.Debug("idle: returned free memory to the kernel", "allocated_since_last_mib", (now-r.last)>>20)
	r.last = r.allocated() // what free itself allocated does not count
	return true
}

// freeTwice runs two collections: the first only moves sync.Pool
// contents (the connections' buffers) to the victim cache, the second
// frees them, and each returns what is free to the kernel.
func freeTwice() {
	debug.FreeOSMemory()
	debug.FreeOSMemory()
}

// heapAllocated is the cumulative heap allocation (runtime/metrics, no
// stop-the-world).
func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// startReclaimer runs the reclaimer until the returned stop is called.
func (d *Daemon) startReclaimer() (stop func()) {
	r := &reclaimer{sessions: func() int { return len(d.fw.Sessions()) }, allocated: heapAllocated, free: freeTwice, log: d.log}
	r.last = r.allocated()
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
