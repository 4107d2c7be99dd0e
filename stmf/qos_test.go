package stmf

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
)

// fakeClock fires its timers only when the test advances it, in due order.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	due  time.Time
	f    func()
	dead bool
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.dead
	t.dead = true
	return was
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) qosTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, due: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// advance moves time forward by d, firing each timer at its due time.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].due.Before(c.timers[j].due) })
		var next *fakeTimer
		for len(c.timers) > 0 {
			t := c.timers[0]
			if t.dead {
				c.timers = c.timers[1:]
				continue
			}
			if t.due.After(end) {
				break
			}
			next = t
			c.timers = c.timers[1:]
			break
		}
		if next == nil {
			break
		}
		next.dead = true
		c.now = next.due
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// startLog records which tasks a gate started, in order.
type startLog struct {
	mu    sync.Mutex
	tasks []*Task
}

func (l *startLog) start(t *Task) {
	l.mu.Lock()
	l.tasks = append(l.tasks, t)
	l.mu.Unlock()
}

func (l *startLog) n() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tasks)
}

func throttled(s *Session, bytes uint64) *Task {
	t := NewTask(newFakeTransport())
	t.Session = s
	t.Throttle = Throttle{IO: true, Bytes: bytes}
	return t
}

func TestQoSBucket(t *testing.T) {
	const ms = time.Millisecond
	cases := []struct {
		name    string
		lim     QoSLimits
		bytes   uint64
		tasks   int
		advance time.Duration
		// started at once (the burst), and after advance (the rate, ±1).
		wantBurst, wantAfter int
	}{
		{"iops", QoSLimits{IOPS: 1000}, 4096, 200, 50 * ms, 100, 150},
		{"iops slow", QoSLimits{IOPS: 10}, 4096, 10, 500 * ms, 1, 6},
		{"bandwidth", QoSLimits{BytesPerSec: 1 << 20}, 4096, 100, 100 * ms, 26, 51},
		{"bandwidth bound", QoSLimits{IOPS: 100000, BytesPerSec: 1 << 20}, 65536, 40, 500 * ms, 2, 10},
		{"iops bound", QoSLimits{IOPS: 100, BytesPerSec: 1 << 30}, 512, 40, 100 * ms, 10, 20},
		{"large transfer runs on debt", QoSLimits{BytesPerSec: 1 << 20}, 4 << 20, 3, 4100 * ms, 1, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := &fakeClock{now: time.Unix(1000, 0)}
			var log startLog
			g := newQoSGate(clk, log.start, c.lim)
			s := &Session{}
			for i := 0; i < c.tasks; i++ {
				if task := throttled(s, c.bytes); g.admit(task) {
					log.start(task)
				}
			}
			if got := log.n(); got != c.wantBurst {
				t.Errorf("started at once: %d, want %d", got, c.wantBurst)
			}
			clk.advance(c.advance)
			if got := log.n(); got < c.wantAfter-1 || got > c.wantAfter+1 {
				t.Errorf("started after %v: %d, want %d ±1", c.advance, got, c.wantAfter)
			}
		})
	}
}

func TestQoSLiveChange(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	var log startLog
	g := newQoSGate(clk, log.start, QoSLimits{IOPS: 100})
	s := &Session{}
	for i := 0; i < 1000; i++ {
		if task := throttled(s, 4096); g.admit(task) {
			log.start(task)
		}
	}
	clk.advance(time.Second)
	if n := log.n(); n < 108 || n > 112 { // a 10-IO burst, then 100
		t.Fatalf("first second at 100 IOPS: %d started", n)
	}
	g.setLimits(QoSLimits{IOPS: 400})
	before := log.n()
	clk.advance(time.Second)
	if n := log.n() - before; n < 398 || n > 410 {
		t.Errorf("second at 400 IOPS: %d started", n)
	}
	g.setLimits(QoSLimits{}) // unlimited: every waiter goes at once
	if n := log.n(); n != 1000 {
		t.Errorf("after removing the limit: %d of 1000 started", n)
	}
	if task := throttled(s, 4096); !g.admit(task) {
		t.Error("an unlimited gate held a task")
	}
}

// TestQoSFairness: a session that queued 60 tasks first does not make a
// second session's 10 wait behind all of them.
func TestQoSFairness(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	var log startLog
	g := newQoSGate(clk, log.start, QoSLimits{IOPS: 1000})
	a, b := &Session{}, &Session{}
	for i := 0; i < 160; i++ { // 100 pass in the burst, 60 wait
		if task := throttled(a, 4096); g.admit(task) {
			log.start(task)
		}
	}
	for i := 0; i < 10; i++ {
		if g.admit(throttled(b, 4096)) {
			t.Fatal("b passed the waiters")
		}
	}
	clk.advance(20 * time.Millisecond) // 20 releases
	log.mu.Lock()
	defer log.mu.Unlock()
	var fromA, fromB int
	for _, task := range log.tasks[100:] {
		if task.Session == a {
			fromA++
		} else {
			fromB++
		}
	}
	if fromB != 10 || fromA < 9 || fromA > 11 {
		t.Errorf("20 releases: %d from a, %d from b; want them alternating (10 each)", fromA, fromB)
	}
}

// throttleLU is a fakeLU whose data commands cost one I/O of 4 KiB.
type throttleLU struct{ fakeLU }

func (l *throttleLU) Admit(t *Task) {
	if t.CDB[0] == 0x28 {
		t.Throttle = Throttle{IO: true, Bytes: 4096}
	}
}

// TestQoSAbortReleases: a task waiting for tokens (the next one a second
// away) is retired at once by ABORT TASK, LUN RESET, ABORT TASK SET or the
// session's end, and never reaches the LU.
func TestQoSAbortReleases(t *testing.T) {
	aborts := map[string]func(s *Session, tag uint64){
		"abort task":     func(s *Session, tag uint64) { s.AbortTask(tag) },
		"abort task set": func(s *Session, _ uint64) { s.AbortTaskSet(scsi.EncodeLUN(0)) },
		"lun reset":      func(s *Session, _ uint64) { s.LUNReset(scsi.EncodeLUN(0)) },
		"session close":  func(s *Session, _ uint64) { s.Close() },
	}
	for name, abort := range aborts {
		t.Run(name, func(t *testing.T) {
			fw := New(nil)
			l := &throttleLU{fakeLU{guid: guidN(1)}}
			_ = fw.RegisterLU(l)
			_, _ = fw.AddView(l.guid, ViewEntry{}, true)
			if err := fw.SetQoS(l.guid, QoSLimits{IOPS: 1}); err != nil {
				t.Fatal(err)
			}
			port, _ := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
			s, _ := port.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
			defer s.Close()
			clearUA(t, s, 0) // TEST UNIT READY is never held
			read := []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}
			submit(t, s, 0, read...) // spends the one token
			tr := newFakeTransport()
			task := NewTask(tr)
			task.Tag = 9
			task.RawLUN = scsi.EncodeLUN(0)
			task.CDB = read
			s.Submit(task)
			select {
			case <-tr.done:
				t.Fatal("the second read was not held by a 1 IOPS limit")
			case <-time.After(50 * time.Millisecond):
			}
			start := time.Now()
			abort(s, 9)
			select {
			case <-tr.done:
			case <-time.After(300 * time.Millisecond):
				t.Fatal("aborted task still held after 300ms")
			}
			if len(tr.results) != 0 || tr.drops != 1 {
				t.Errorf("aborted held task: %d results, %d drops", len(tr.results), tr.drops)
			}
			t.Logf("released %v after the abort", time.Since(start))
		})
	}
}

// TestQoSLiveOnFramework: SetQoS reaches a registered LU at once, survives
// re-registration, and 0/0 removes the gate (the unlimited path is a nil load).
func TestQoSLiveOnFramework(t *testing.T) {
	fw := New(nil)
	l := &throttleLU{fakeLU{guid: guidN(1)}}
	_ = fw.RegisterLU(l)
	if err := fw.SetQoS(l.guid, QoSLimits{BytesPerSec: 100}); err == nil {
		t.Error("a bandwidth limit below one block per second was accepted")
	}
	_ = fw.SetQoS(l.guid, QoSLimits{IOPS: 50})
	if fw.lus[l.guid].qos.Load() == nil {
		t.Fatal("no gate on the registered LU")
	}
	_ = fw.DeregisterLU(l.guid, true)
	_ = fw.RegisterLU(l)
	if g := fw.lus[l.guid].qos.Load(); g == nil || g.lim.IOPS != 50 {
		t.Fatal("the limit did not come back with the LU")
	}
	_ = fw.SetQoS(l.guid, QoSLimits{})
	if fw.lus[l.guid].qos.Load() != nil || fw.QoS(l.guid) != (QoSLimits{}) {
		t.Error("0/0 left a gate")
	}
}

// TestQoSLateTimer: a release timer that fires 50 ms late (a descheduled
// thread) releases what the waiters earned meanwhile, not just one burst,
// so a busy machine does not pull the rate under the limit.
func TestQoSLateTimer(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	var log startLog
	g := newQoSGate(clk, log.start, QoSLimits{IOPS: 1000})
	s := &Session{}
	for i := 0; i < 180; i++ { // 100 in the burst, 80 wait
		if task := throttled(s, 4096); g.admit(task) {
			log.start(task)
		}
	}
	clk.mu.Lock()
	clk.now = clk.now.Add(50 * time.Millisecond) // time passes, no timer runs
	clk.mu.Unlock()
	clk.advance(0)
	if n := log.n() - 100; n < 49 || n > 51 {
		t.Errorf("a 50 ms late release started %d tasks, want 50 (1000 IOPS)", n)
	}
}
