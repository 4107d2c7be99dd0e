package iscsi

import (
	"sync"
	"sync/atomic"
)

// Bytes charged per queued PDU on top of its data: the 48-byte header,
// digests, padding and (for a SCSI Response) up to 252 bytes of sense.
const (
	pduOverhead  = 64
	respOverhead = 512
)

// respBudget bounds the memory a connection holds for responses it has
// not written yet, in two shares:
//
//   - tasks: the Data-In and status of SCSI commands, reserved when a
//     command is submitted (its expected read length) and given back when
//     its response is written or dropped. A command that does not fit
//     waits, in submission order, without blocking the reader: what frees
//     the share is the writer and the LUs, never the reader, so nothing
//     can wait on itself. A command larger than the share runs alone.
//   - control: NOP-In echoes, Text, Reject, TMF and Logout responses. They
//     are charged by the reader before it reads the request's data; when
//     the share is full the reader stops reading (TCP back-pressure) until
//     the writer has written some. Only the peer's reading frees it.
//
// R2Ts, NOP-In pings and Async Messages are headers only and bounded by
// MaxOutstandingR2T per write and one per event; they are not charged.
type respBudget struct {
	taskLimit int64
	ctlLimit  int64

	taskUsed atomic.Int64
	ctlUsed  atomic.Int64
	ctlWake  chan struct{} // the writer freed control bytes

	// pending counts commands that took the slow path and are not yet
	// submitted; while it is non-zero new commands queue behind them so
	// submission order is kept. Only the reader increments it.
	pending atomic.Int32
	mu      sync.Mutex
	waitq   []*cmd
	kicking bool // a goroutine is submitting admitted commands
	closed  bool
}

func newRespBudget(taskLimit, ctlLimit int64) *respBudget {
	return &respBudget{taskLimit: taskLimit, ctlLimit: ctlLimit, ctlWake: make(chan struct{}, 1)}
}

// used returns the bytes held in both shares.
func (b *respBudget) used() (task, ctl int64) { return b.taskUsed.Load(), b.ctlUsed.Load() }

// ctlCost is the control charge of a PDU carrying n data bytes.
func ctlCost(n int) int64 { return int64(n) + pduOverhead }

// taskCost is what a command's response may hold: its Data-In (the read
// length the initiator expects) and a status with sense.
func taskCost(cm *cmd) int64 {
	n := int64(respOverhead)
	switch {
	case cm.bidi:
		n += int64(cm.bidiReadLen)
	case cm.read:
		n += int64(cm.edtl)
	}
	return n
}

// acquireCtl charges n control bytes, waiting while the share is full (a
// single charge larger than the share is let through alone). It returns
// false when the connection closed meanwhile. Reader only.
func (c *conn) acquireCtl(n int64) bool {
	b := c.rb
	for {
		v := b.ctlUsed.Add(n)
		if v <= b.ctlLimit || v == n {
			return true
		}
		b.ctlUsed.Add(-n)
		c.releaseWakes() // what frees the budget may be held back
		select {
		case <-b.ctlWake:
		case <-c.done:
			return false
		}
	}
}

// enqueueCtl queues a control response charged to the control share,
// waiting for room first. Reader only.
func (c *conn) enqueueCtl(it outItem) {
	n := ctlCost(len(it.data))
	if !c.acquireCtl(n) {
		return
	}
	it.ctlCharge = n
	if !c.enqueue(it) {
		c.releaseCharges(0, n)
	}
}

// releaseCharges gives written or dropped bytes back.
func (c *conn) releaseCharges(task, ctl int64) {
	b := c.rb
	if ctl != 0 {
		b.ctlUsed.Add(-ctl)
		select {
		case b.ctlWake <- struct{}{}:
		default:
		}
	}
	if task != 0 {
		b.taskUsed.Add(-task)
		if b.pending.Load() > 0 {
			go c.kickWaiting()
		}
	}
}

// admitTask charges a command's response before it is submitted. It
// returns false when the command was queued instead; it is submitted by
// kickWaiting once it fits. Called in submission order (reader).
func (c *conn) admitTask(cm *cmd) bool {
	b := c.rb
	n := taskCost(cm)
	if b.pending.Load() == 0 {
		v := b.taskUsed.Add(n)
		if v <= b.taskLimit || v == n {
			cm.respCharge.Store(n)
			return true
		}
		b.taskUsed.Add(-n)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		c.dropUnsubmitted(cm)
		return false
	}
	b.waitq = append(b.waitq, cm)
	b.pending.Add(1)
	b.mu.Unlock()
	c.kickWaiting()
	return false
}

// kickWaiting submits queued commands, in order, while they fit.
func (c *conn) kickWaiting() {
	b := c.rb
	for {
		b.mu.Lock()
		if b.kicking || b.closed {
			b.mu.Unlock()
			return
		}
		var ready []*cmd
		for len(b.waitq) > 0 {
			cm := b.waitq[0]
			n := taskCost(cm)
			v := b.taskUsed.Load()
			if v+n > b.taskLimit && v != 0 {
				break
			}
			// Only releases race with this add: pending > 0 keeps the
			// reader on the slow path.
			b.taskUsed.Add(n)
			cm.respCharge.Store(n)
			b.waitq[0] = nil
			b.waitq = b.waitq[1:]
			ready = append(ready, cm)
		}
		if len(ready) == 0 {
			b.mu.Unlock()
			return
		}
		b.kicking = true
		b.mu.Unlock()
		for _, cm := range ready {
			c.submitNow(cm, false)
		}
		b.mu.Lock()
		b.kicking = false
		b.pending.Add(-int32(len(ready)))
		b.mu.Unlock()
	}
}

// closeWaiting forgets the commands still waiting for budget when the
// connection ends: they never reached stmf.
func (c *conn) closeWaiting() {
	b := c.rb
	b.mu.Lock()
	b.closed = true
	q := b.waitq
	b.waitq = nil
	b.mu.Unlock()
	for _, cm := range q {
		b.pending.Add(-1)
		c.dropUnsubmitted(cm)
	}
}

// dropUnsubmitted ends a command that never reached stmf.
func (c *conn) dropUnsubmitted(cm *cmd) {
	cm.mu.Lock()
	cm.finished = true
	cm.mu.Unlock()
	c.forget(cm)
}

// takeRespCharge returns the command's response charge once.
func (cm *cmd) takeRespCharge() int64 { return cm.respCharge.Swap(0) }
