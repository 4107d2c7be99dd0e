package mgmt

import "sync"

// changeLock is the manager's lock. A change holds it exclusively; a
// read (list-lu, list-view, export, the metrics exporter's aliases, the
// cluster loop's LU list) shares it. While a change saves its new state
// it lets reads back in (shareWhile) and still keeps other changes out:
// in cluster mode the save is an etcd Txn, which a slow or unreachable
// etcd holds up to the lease TTL, and list-lu must not wait for it. Those
// reads see the state before the change (it is adopted only once saved)
// and the live objects as the change left them (list-lu may show an LU
// being deleted as offline), as they would see a change that failed.
type changeLock struct {
	mu       sync.Mutex
	cond     sync.Cond
	changing bool // a change holds the lock
	saving   bool // ... and lets reads in while it saves
	waiting  int  // changes waiting for the lock
	readers  int
}

func (l *changeLock) wait() {
	if l.cond.L == nil {
		l.cond.L = &l.mu
	}
	l.cond.Wait()
}

// Lock takes the lock for a change.
func (l *changeLock) Lock() {
	l.mu.Lock()
	l.waiting++
	for l.changing || l.readers > 0 {
		l.wait()
	}
	l.waiting--
	l.changing = true
	l.mu.Unlock()
}

// Unlock ends a change.
func (l *changeLock) Unlock() {
	l.mu.Lock()
	l.changing, l.saving = false, false
	l.cond.Broadcast()
	l.mu.Unlock()
}

// RLock takes the lock for a read. A waiting change goes first (reads
// cannot starve changes), except while a change saves.
func (l *changeLock) RLock() {
	l.mu.Lock()
	for l.changing && !l.saving || !l.changing && l.waiting > 0 {
		l.wait()
	}
	l.readers++
	l.mu.Unlock()
}

// RUnlock ends a read.
func (l *changeLock) RUnlock() {
	l.mu.Lock()
	l.readers--
	if l.readers == 0 {
		l.cond.Broadcast()
	}
	l.mu.Unlock()
}

// shareWhile runs save with reads let in; the caller holds the lock for a
// change and has it exclusively again, the reads gone, when it returns.
// save must not touch what reads read.
func (l *changeLock) shareWhile(save func()) {
	l.mu.Lock()
	l.saving = true
	l.cond.Broadcast()
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.saving = false
		for l.readers > 0 {
			l.wait()
		}
		l.mu.Unlock()
	}()
	save()
}
