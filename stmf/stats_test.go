package stmf

import (
	"sync"
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
)

// scriptLU answers every task with next (GOOD when nil), after pulling
// the Data-Out of write-direction tasks. With hold set it first reports
// the task on entered and waits until hold is closed.
type scriptLU struct {
	guid    GUID
	next    *Result
	hold    chan struct{}
	entered chan struct{}
}

func (l *scriptLU) GUID() GUID { return l.guid }

// Admit classes the task as an LU's command table would (lu's tests
// check the real table's kinds).
func (l *scriptLU) Admit(t *Task) {
	switch t.CDB[0] {
	case scsi.OpRead10, scsi.OpRead16:
		t.SetKind(KindRead)
	case scsi.OpWrite10, scsi.OpWrite16, scsi.OpWriteSame16:
		t.SetKind(KindWrite)
	case scsi.OpUnmap:
		t.SetKind(KindUnmap)
	case scsi.OpCompareAndWrite:
		t.SetKind(KindATS)
	case scsi.OpExtendedCopy:
		t.SetKind(KindXCopy)
	case scsi.OpSyncCache10, scsi.OpSyncCache16:
		t.SetKind(KindFlush)
	}
}
func (l *scriptLU) Execute(t *Task) {
	if l.hold != nil {
		l.entered <- struct{}{}
		<-l.hold
	}
	if t.Dir == scsi.DirWrite {
		if _, err := t.Data(); err != nil {
			t.CompleteSense(scsi.NewSense(scsi.KeyAbortedCommand, scsi.ASCNoAdditionalSense))
			return
		}
	}
	if l.next == nil {
		t.CompleteStatus(scsi.StatusGood)
		return
	}
	r := *l.next
	t.Complete(&r)
}

// statsRig is a framework with one LU as LUN 0 behind one port.
type statsRig struct {
	fw   *Framework
	lu   *scriptLU
	port *LocalPort
}

func newStatsRig(t *testing.T) *statsRig {
	t.Helper()
	fw := New(nil)
	l := &scriptLU{guid: guidN(1)}
	if err := fw.RegisterLU(l); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(l.guid, ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	port, err := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
	if err != nil {
		t.Fatal(err)
	}
	return &statsRig{fw: fw, lu: l, port: port}
}

// open opens a session and consumes its power-on unit attention; the
// test TUR and its CHECK CONDITION are part of every count that follows.
func (r *statsRig) open(t *testing.T, initiatorPort string) *Session {
	t.Helper()
	s, err := r.port.OpenSession(Initiator{Name: "iqn.a", PortName: initiatorPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	clearUA(t, s, 0)
	return s
}

// cmd is one command for run.
type cmd struct {
	lun    scsi.LUN
	cdb    []byte
	dir    scsi.DataDir
	expLen uint32
	out    []byte // Data-Out
}

func run(t *testing.T, s *Session, c cmd) {
	t.Helper()
	tr := &nopTransport{data: c.out, done: make(chan struct{}, 1)}
	task := NewTask(tr)
	task.RawLUN = scsi.EncodeLUN(c.lun)
	task.CDB = c.cdb
	task.Dir = c.dir
	task.ExpectedLen = c.expLen
	s.Submit(task)
	select {
	case <-tr.done:
	case <-time.After(5 * time.Second):
		t.Errorf("cdb % x did not finish", c.cdb) // not Fatal: run is called from goroutines
	}
}

// since is a minus b, for counters that only grow.
func since(a, b Snapshot) Snapshot {
	d := a
	for i := range d.Commands {
		d.Commands[i] -= b.Commands[i]
	}
	d.InFlight -= b.InFlight
	d.BytesRead -= b.BytesRead
	d.BytesWritten -= b.BytesWritten
	d.CheckCondition -= b.CheckCondition
	d.ReservationConflict -= b.ReservationConflict
	d.Busy -= b.Busy
	d.TaskSetFull -= b.TaskSetFull
	d.Aborted -= b.Aborted
	for i := range d.SenseKeys {
		d.SenseKeys[i] -= b.SenseKeys[i]
	}
	d.ATSMiscompares -= b.ATSMiscompares
	for k := range d.Latency {
		for i := range d.Latency[k].Buckets {
			d.Latency[k].Buckets[i] -= b.Latency[k].Buckets[i]
		}
		d.Latency[k].Sum -= b.Latency[k].Sum
	}
	return d
}

// checkOne checks that d counts exactly one command as want says; the
// latency bucket depends on the clock, so only its count is exact.
func checkOne(t *testing.T, where string, d, want Snapshot) {
	t.Helper()
	for k := range d.Latency {
		if n := d.Latency[k].Count(); n != want.Commands[k] {
			t.Errorf("%s: %d %v latencies, want %d", where, n, Kind(k), want.Commands[k])
		}
	}
	d.Latency = [NumKinds]Histogram{}
	if d != want {
		t.Errorf("%s:\n got %+v\nwant %+v", where, d, want)
	}
}

func sense(key scsi.SenseKey, asc scsi.ASC) *Result {
	return &Result{Status: scsi.StatusCheckCondition, Sense: scsi.NewSense(key, asc).Bytes()}
}

func TestTaskCounters(t *testing.T) {
	blk := make([]byte, 4096)
	read10 := []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}
	write16 := []byte{0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0}
	tur := []byte{0, 0, 0, 0, 0, 0}
	for _, tc := range []struct {
		name    string
		c       cmd
		answer  *Result
		kind    Kind
		read    uint64
		written uint64
		status  func(*Snapshot) *uint64 // the status counter that goes up, if any
		key     int                     // sense key counted, or -1
		noLU    bool                    // answered by the framework: the LU counts nothing
		miscmp  bool                    // an ATS miscompare
	}{
		{name: "READ(10)", c: cmd{cdb: read10, dir: scsi.DirRead, expLen: 4096},
			answer: &Result{Status: scsi.StatusGood, Data: blk}, kind: KindRead, read: 4096, key: -1},
		{name: "READ(16) clipped to the expected length", c: cmd{cdb: []byte{0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0}, dir: scsi.DirRead, expLen: 512},
			answer: &Result{Status: scsi.StatusGood, Data: blk}, kind: KindRead, read: 512, key: -1},
		{name: "WRITE(10)", c: cmd{cdb: []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0}, dir: scsi.DirWrite, expLen: 4096, out: blk},
			kind: KindWrite, written: 4096, key: -1},
		{name: "WRITE(16) medium error", c: cmd{cdb: write16, dir: scsi.DirWrite, expLen: 4096, out: blk},
			answer: sense(scsi.KeyMediumError, scsi.ASCWriteError), kind: KindWrite,
			status: func(s *Snapshot) *uint64 { return &s.CheckCondition }, key: int(scsi.KeyMediumError)},
		{name: "WRITE SAME(16)", c: cmd{cdb: []byte{0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0}, dir: scsi.DirWrite, expLen: 512, out: blk[:512]},
			kind: KindWrite, written: 512, key: -1},
		{name: "UNMAP", c: cmd{cdb: []byte{0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, dir: scsi.DirWrite, expLen: 24, out: blk[:24]},
			kind: KindUnmap, written: 24, key: -1},
		{name: "COMPARE AND WRITE miscompare", c: cmd{cdb: []byte{0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}, dir: scsi.DirWrite, expLen: 1024, out: blk[:1024]},
			answer: sense(scsi.KeyMiscompare, scsi.ASCMiscompareDuringVerify), kind: KindATS,
			status: func(s *Snapshot) *uint64 { return &s.CheckCondition }, key: int(scsi.KeyMiscompare), miscmp: true},
		{name: "EXTENDED COPY", c: cmd{cdb: []byte{0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0}, dir: scsi.DirWrite, expLen: 64, out: blk[:64]},
			kind: KindXCopy, written: 64, key: -1},
		{name: "SYNCHRONIZE CACHE(10)", c: cmd{cdb: []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
			kind: KindFlush, key: -1},
		{name: "SYNCHRONIZE CACHE(16) aborted by the LU", c: cmd{cdb: []byte{0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
			answer: &Result{Status: scsi.StatusTaskAborted}, kind: KindFlush,
			status: func(s *Snapshot) *uint64 { return &s.Aborted }, key: -1},
		{name: "TUR reservation conflict", c: cmd{cdb: tur},
			answer: &Result{Status: scsi.StatusReservationConflict}, kind: KindOther,
			status: func(s *Snapshot) *uint64 { return &s.ReservationConflict }, key: -1},
		{name: "TUR busy", c: cmd{cdb: tur},
			answer: &Result{Status: scsi.StatusBusy}, kind: KindOther,
			status: func(s *Snapshot) *uint64 { return &s.Busy }, key: -1},
		{name: "TUR task set full", c: cmd{cdb: tur},
			answer: &Result{Status: scsi.StatusTaskSetFull}, kind: KindOther,
			status: func(s *Snapshot) *uint64 { return &s.TaskSetFull }, key: -1},
		{name: "descriptor-format sense", c: cmd{cdb: tur},
			answer: &Result{Status: scsi.StatusCheckCondition, Sense: []byte{0x72, byte(scsi.KeyNotReady), 0x04, 0x03, 0, 0, 0, 0}},
			kind:   KindOther, status: func(s *Snapshot) *uint64 { return &s.CheckCondition }, key: int(scsi.KeyNotReady)},
		{name: "unmapped LUN", c: cmd{lun: 5, cdb: tur}, kind: KindOther, noLU: true,
			status: func(s *Snapshot) *uint64 { return &s.CheckCondition }, key: int(scsi.KeyIllegalRequest)},
		{name: "REPORT LUNS", c: cmd{cdb: []byte{0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0}, dir: scsi.DirRead, expLen: 4096},
			kind: KindOther, read: 16, key: -1, noLU: true},
		{name: "empty CDB", c: cmd{}, kind: KindOther, noLU: true,
			status: func(s *Snapshot) *uint64 { return &s.CheckCondition }, key: int(scsi.KeyIllegalRequest)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newStatsRig(t)
			s := r.open(t, "iqn.a,i,0x1")
			before := r.fw.Stats()
			r.lu.next = tc.answer
			run(t, s, tc.c)
			after := r.fw.Stats()

			var want Snapshot
			want.Commands[tc.kind] = 1
			want.BytesRead = tc.read
			want.BytesWritten = tc.written
			if tc.status != nil {
				*tc.status(&want) = 1
			}
			if tc.key >= 0 {
				want.SenseKeys[tc.key] = 1
			}
			if tc.miscmp {
				want.ATSMiscompares = 1
			}
			checkOne(t, "session", since(after.Sessions[0].Snapshot, before.Sessions[0].Snapshot), want)
			checkOne(t, "port", since(after.Ports[r.port.Name], before.Ports[r.port.Name]), want)
			lu := since(after.LUs[r.lu.guid], before.LUs[r.lu.guid])
			if tc.noLU {
				if lu != (Snapshot{}) {
					t.Errorf("LU counted a command it never saw: %+v", lu)
				}
				return
			}
			checkOne(t, "LU", lu, want)
		})
	}
}

func TestTaskCountersAbortAndInFlight(t *testing.T) {
	r := newStatsRig(t)
	s := r.open(t, "iqn.a,i,0x1")
	base := r.fw.Stats()
	r.lu.hold, r.lu.entered = make(chan struct{}), make(chan struct{}, 1)

	tr := &nopTransport{done: make(chan struct{}, 1)}
	task := NewTask(tr)
	task.Tag = 7
	task.CDB = []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}
	task.Dir = scsi.DirRead
	task.ExpectedLen = 4096
	r.lu.next = &Result{Status: scsi.StatusGood, Data: make([]byte, 4096)}
	s.Submit(task)
	<-r.lu.entered // the LU has it: the abort below drops its answer

	st := r.fw.Stats()
	for where, snap := range map[string]Snapshot{
		"session": st.Sessions[0].Snapshot, "port": st.Ports[r.port.Name], "LU": st.LUs[r.lu.guid],
	} {
		if snap.InFlight != 1 {
			t.Errorf("%s: %d in flight, want 1", where, snap.InFlight)
		}
	}
	s.AbortTask(7)
	hold := 25 * time.Millisecond
	time.Sleep(hold)
	close(r.lu.hold)
	<-tr.done

	st = r.fw.Stats()
	var want Snapshot
	want.Commands[KindRead] = 1
	want.Aborted = 1
	for where, d := range map[string]Snapshot{
		"session": since(st.Sessions[0].Snapshot, base.Sessions[0].Snapshot),
		"port":    since(st.Ports[r.port.Name], base.Ports[r.port.Name]),
		"LU":      since(st.LUs[r.lu.guid], base.LUs[r.lu.guid]),
	} {
		// The LU held the task at least this long: a lower bound only.
		var slow uint64
		for _, n := range d.Latency[KindRead].Buckets[latencyBucket(hold):] {
			slow += n
		}
		if d.Latency[KindRead].Sum < hold || slow != 1 {
			t.Errorf("%s: latency %+v, want one of at least %v", where, d.Latency, hold)
		}
		checkOne(t, where, d, want)
	}
}

// TestTaskCountersSessionsAndPorts checks that a port sums its sessions,
// closed ones included, and that sessions and LUs count apart.
func TestTaskCountersSessionsAndPorts(t *testing.T) {
	r := newStatsRig(t)
	const workers, each = 4, 50
	sa := r.open(t, "iqn.a,i,0x1")
	sb := r.open(t, "iqn.a,i,0x2")
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		s := sa
		if w%2 == 1 {
			s = sb
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				run(t, s, cmd{cdb: []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}, dir: scsi.DirWrite, expLen: 512, out: make([]byte, 512)})
			}
		}()
	}
	wg.Wait()
	sb.Close()

	st := r.fw.Stats()
	if len(st.Sessions) != 1 || st.Sessions[0].InitiatorPort != "iqn.a,i,0x1" || st.Sessions[0].TargetPort != r.port.Name {
		t.Fatalf("sessions after one closed: %+v", st.Sessions)
	}
	// Each session also ran two TURs (open's clearUA): one reported the
	// power-on unit attention.
	const perSession = workers / 2 * each
	for _, tc := range []struct {
		where          string
		snap           Snapshot
		writes, others uint64
	}{
		{"open session", st.Sessions[0].Snapshot, perSession, 2},
		{"port, closed session included", st.Ports[r.port.Name], 2 * perSession, 4},
		{"LU", st.LUs[r.lu.guid], 2 * perSession, 4},
	} {
		s := tc.snap
		if s.Commands[KindWrite] != tc.writes || s.Commands[KindOther] != tc.others || s.Total() != tc.writes+tc.others {
			t.Errorf("%s: commands %v, want %d writes and %d others", tc.where, s.Commands, tc.writes, tc.others)
		}
		if s.BytesWritten != 512*tc.writes || s.BytesRead != 0 {
			t.Errorf("%s: %d bytes written, %d read", tc.where, s.BytesWritten, s.BytesRead)
		}
		if s.CheckCondition != tc.others/2 || s.SenseKeys[scsi.KeyUnitAttention] != tc.others/2 {
			t.Errorf("%s: %d CHECK CONDITIONs, %d unit attentions, want %d", tc.where, s.CheckCondition, s.SenseKeys[scsi.KeyUnitAttention], tc.others/2)
		}
		all := s.AllLatency()
		if all.Count() != s.Total() || s.Latency[KindWrite].Count() != tc.writes || s.InFlight != 0 {
			t.Errorf("%s: %d latencies (%d writes) for %d commands, %d in flight", tc.where, all.Count(), s.Latency[KindWrite].Count(), s.Total(), s.InFlight)
		}
	}
}

// TestKindFromLU: a task takes the kind its LU gives it in Admit; one
// no LU classes (answered by the framework) counts as other.
func TestKindFromLU(t *testing.T) {
	r := newStatsRig(t)
	s := r.open(t, "iqn.a,i,0x000000000001")
	before := r.fw.Stats().Sessions[0].Snapshot
	run(t, s, cmd{cdb: []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}})
	run(t, s, cmd{cdb: []byte{0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0}, dir: scsi.DirRead, expLen: 16})
	got := since(r.fw.Stats().Sessions[0].Snapshot, before)
	if got.Commands[KindFlush] != 1 || got.Commands[KindOther] != 1 || got.Total() != 2 {
		t.Fatalf("commands by kind %v, want one flush (from the LU) and one other (REPORT LUNS)", got.Commands)
	}
}

func TestLatencyBucket(t *testing.T) {
	last := NumLatencyBuckets - 1
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0},
		{10 * time.Microsecond, 0},
		{10*time.Microsecond + 1, 1},
		{20 * time.Microsecond, 1},
		{time.Millisecond, 6},
		{3 * time.Millisecond, 8},
		{10 * time.Second, last - 1},
		{10*time.Second + 1, last},
		{time.Hour, last},
	} {
		if got := latencyBucket(tc.d); got != tc.want {
			t.Errorf("latencyBucket(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	if b := LatencyBounds(); b[0] != 10*time.Microsecond || b[len(b)-1] != 10*time.Second {
		t.Errorf("bounds %v..%v, want 10µs..10s", b[0], b[len(b)-1])
	}
}

// A task submitted to a closed session is dropped, as before counters,
// and counts as aborted on its LU; the LU never classed it, so its kind is
// other.
func TestSubmitAfterCloseDropsAndCounts(t *testing.T) {
	r := newStatsRig(t)
	s := r.open(t, "iqn.a,i,0x1")
	s.Close()
	before := r.fw.Stats().LUs[r.lu.guid]
	tr := newFakeTransport()
	task := NewTask(tr)
	task.CDB = []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}
	s.Submit(task)
	tr.wait(t)
	if len(tr.results) != 0 || tr.drops != 1 {
		t.Fatalf("%d results, %d drops; want the task dropped", len(tr.results), tr.drops)
	}
	var want Snapshot
	want.Commands[KindOther] = 1
	want.Aborted = 1
	checkOne(t, "LU", since(r.fw.Stats().LUs[r.lu.guid], before), want)
}
