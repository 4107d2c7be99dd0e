package stmf

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/scsi"
)

// LocalPort is a SCSI target port registered by a port provider (an iSCSI
// target name plus portal group tag, or an FC WWPN).
type LocalPort struct {
	fw          *Framework
	Protocol    scsi.ProtocolID
	TargetName  string // target device name; target groups match it
	Name        string // SCSI target port name, e.g. "iqn…,t,0x0001"
	RelativeID  uint16 // relative target port identifier, stable per Name
	Group       uint16 // ALUA target port group
	Designators PortDesignators
}

// PortSpec is what a port provider tells the framework about a target port
// it registers.
type PortSpec struct {
	Protocol    scsi.ProtocolID
	TargetName  string // target device name; target groups match it
	Name        string // SCSI target port name, unique; the relative port id is stable per name
	Group       uint16 // ALUA target port group (DefaultPortGroup unless configured)
	Designators PortDesignators
}

// PortDesignators are the target port's and target device's designators
// of VPD page 0x83 (SPC-4 7.8.6), decided by the port provider. With PIV
// they, and the relative target port and target port group designators
// the LU adds, carry the port's protocol identifier.
type PortDesignators struct {
	PIV    bool
	Port   []scsi.Designator // associated with the target port
	Target []scsi.Designator // associated with the target device
}

// RegisterPort registers a local target port and assigns its relative
// port identifier (stable per port name).
func (fw *Framework) RegisterPort(spec PortSpec) (*LocalPort, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	portName := spec.Name
	if _, ok := fw.ports[portName]; ok {
		return nil, fmt.Errorf("%w: %s", ErrPortExists, portName)
	}
	rel, ok := fw.relIDs[portName]
	if !ok {
		rel = fw.nextRel
		fw.nextRel++
		fw.relIDs[portName] = rel
	}
	p := &LocalPort{fw: fw, Protocol: spec.Protocol, TargetName: spec.TargetName, Name: portName,
		RelativeID: rel, Group: spec.Group, Designators: spec.Designators}
	fw.ports[portName] = p
	return p, nil
}

// Deregister removes the port. Its sessions must be closed by the provider.
func (p *LocalPort) Deregister() {
	p.fw.mu.Lock()
	defer p.fw.mu.Unlock()
	if p.fw.ports[p.Name] == p {
		delete(p.fw.ports, p.Name)
	}
}

// Nexus describes an I_T nexus in the terms SPC needs, as the port
// provider supplies them: the LU compares initiator ports by TransportID
// and never parses a name.
type Nexus struct {
	Protocol          scsi.ProtocolID
	InitiatorName     string           // initiator device name (host groups match it), for display
	InitiatorPort     string           // SCSI initiator port name, for display
	InitiatorPortID   scsi.TransportID // the initiator port
	InitiatorDeviceID scsi.TransportID // the initiator device: all of its ports
	TargetName        string
	TargetPort        string
	RelativePortID    uint16
	PortGroup         uint16 // ALUA target port group of the target port
	Designators       PortDesignators
}

// Initiator is the SCSI initiator port of a new I_T nexus, as the port
// provider knows it.
type Initiator struct {
	Name     string           // initiator device name: host groups match it
	PortName string           // SCSI initiator port name, for display
	PortID   scsi.TransportID // TransportID of the port
	DeviceID scsi.TransportID // TransportID of the device (iSCSI format 00b); PortID when the protocol has none
}

// Session is an I_T nexus: the framework's view of one initiator port
// logged in to one local port.
type Session struct {
	fw      *Framework
	Nexus   Nexus
	Created time.Time

	lunMap atomic.Pointer[lunMap]
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	tasks  map[uint64]*Task
	ua     map[scsi.LUN][]scsi.ASC
	wg     sync.WaitGroup

	stats *sessionStats
}

// OpenSession creates the I_T nexus between an initiator port and p.
func (p *LocalPort) OpenSession(ini Initiator) (*Session, error) {
	fw := p.fw
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.ports[p.Name] != p {
		return nil, ErrPortOffline
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		fw: fw,
		Nexus: Nexus{
			Protocol:          p.Protocol,
			InitiatorName:     ini.Name,
			InitiatorPort:     ini.PortName,
			InitiatorPortID:   ini.PortID,
			InitiatorDeviceID: ini.DeviceID,
			TargetName:        p.TargetName,
			TargetPort:        p.Name,
			RelativePortID:    p.RelativeID,
			PortGroup:         p.Group,
			Designators:       p.Designators,
		},
		Created: time.Now(),
		ctx:     ctx,
		cancel:  cancel,
		tasks:   map[uint64]*Task{},
		ua:      map[scsi.LUN][]scsi.ASC{},
	}
	m := fw.mapForLocked(ini.Name, p.TargetName)
	s.lunMap.Store(&m)
	// A new I_T nexus starts with POWER ON, RESET, OR BUS DEVICE RESET
	// OCCURRED on each LUN, as after a power cycle (SAM-5 6.3.2).
	for n := range m {
		s.ua[n] = []scsi.ASC{scsi.ASCPowerOnReset}
	}
	s.stats = fw.openSessionStatsLocked(ini.PortName, p.Name)
	fw.sessions[s] = struct{}{}
	return s, nil
}

// LUNs returns the session's current LUN numbers in ascending order.
func (s *Session) LUNs() []scsi.LUN { return s.lunMap.Load().sortedLUNs() }

// LU returns the logical unit named g when this session reaches it through
// its LUN map. Third-party copy (EXTENDED COPY) resolves the LUs it names
// with it, so an initiator can only copy from and to LUs it may access.
func (s *Session) LU(g GUID) (LogicalUnit, bool) {
	for _, reg := range *s.lunMap.Load() {
		if reg.lu.GUID() == g {
			return unwrapLU(reg.lu), true
		}
	}
	return nil, false
}

// Close ends the nexus: in-flight tasks are aborted (their results
// dropped) and Close waits until each has finished, so no task outlives
// its session.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return
	}
	s.closed = true
	for _, t := range s.tasks {
		t.markAborted()
	}
	s.mu.Unlock()
	s.cancel()
	s.fw.mu.Lock()
	delete(s.fw.sessions, s)
	s.fw.mu.Unlock()
	s.wg.Wait()
	s.fw.retireSessionStats(s.stats)
	// Losing the I_T nexus clears its per-nexus LU state, like I_T NEXUS
	// RESET (SPC-2: a SCSI-2 reservation is released).
	for _, reg := range *s.lunMap.Load() {
		if r, ok := reg.lu.(Resetter); ok {
			r.Reset(&s.Nexus)
		}
	}
}

// uaPrecedence orders unit attentions as SPC-4 asks: power-on and reset
// conditions first, then everything else in the order raised.
func uaPrecedence(a scsi.ASC) int {
	if a>>8 == 0x29 {
		return 0
	}
	return 1
}

func (s *Session) raiseForLUNs(luns []scsi.LUN, asc scsi.ASC) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range luns {
		s.raiseLocked(n, asc)
	}
}

func (s *Session) raiseLocked(n scsi.LUN, asc scsi.ASC) {
	q := s.ua[n]
	for _, a := range q {
		if a == asc {
			return
		}
	}
	i := len(q)
	for i > 0 && uaPrecedence(q[i-1]) > uaPrecedence(asc) {
		i--
	}
	q = append(q, 0)
	copy(q[i+1:], q[i:])
	q[i] = asc
	s.ua[n] = q
}

// popUA removes and returns the highest-precedence pending unit attention.
func (s *Session) popUA(lun scsi.LUN) (scsi.ASC, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.ua[lun]
	if len(q) == 0 {
		return 0, false
	}
	if len(q) == 1 {
		delete(s.ua, lun)
	} else {
		s.ua[lun] = q[1:]
	}
	return q[0], true
}

func (s *Session) hasUA(lun scsi.LUN) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ua[lun]) > 0
}

// Submit routes a task to its LU. It never blocks on I/O: the LU runs in
// its own goroutine and completes through the task's Transport. Port
// providers call Submit in command order (iSCSI CmdSN order); task
// attributes are enforced from that order. The task must have been built
// with NewTask and its exported fields set.
func (s *Session) Submit(t *Task) {
	t.Session = s
	t.begin(&s.stats.c)
	lun, ok := scsi.DecodeLUN(t.RawLUN)
	t.LUN = lun
	if len(t.CDB) == 0 {
		t.CompleteSense(scsi.IllegalRequest(scsi.ASCInvalidCommandOpcode, 0))
		return
	}
	op := t.CDB[0]
	if op == scsi.OpReportLUNs {
		s.reportLUNs(t)
		return
	}
	var reg *luReg
	if ok {
		reg = (*s.lunMap.Load())[lun]
		t.routed(reg)
	}
	if reg == nil {
		s.noSuchLU(t)
		return
	}
	if op != scsi.OpInquiry {
		if asc, pending := s.popUA(lun); pending {
			sense := scsi.NewSense(scsi.KeyUnitAttention, asc)
			if op == scsi.OpRequestSense {
				t.CompleteData(requestSenseData(t.CDB, sense), nil)
			} else {
				t.CompleteSense(sense)
			}
			return
		}
	}

	// The LU decides what the port's access state allows; stmf answers
	// REPORT TARGET PORT GROUPS itself, which every state allows.
	t.Access = s.fw.accessFor(reg, s.Nexus.PortGroup)
	if op == scsi.OpMaintenanceIn && len(t.CDB) > 1 && t.CDB[1]&0x1f == scsi.SAReportTargetPortGroups {
		t.reg = reg
		s.reportTargetPortGroups(t)
		return
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		t.markAborted()
		t.Complete(&Result{Status: scsi.StatusTaskAborted}) // dropped, counted as aborted
		return
	}
	t.parent = s.ctx
	s.tasks[t.Tag] = t
	s.wg.Add(1)
	s.mu.Unlock()
	t.reg = reg
	t.Seq = reg.seq.Add(1)
	t.tracked = true
	if a, ok := reg.lu.(Admitter); ok {
		a.Admit(t)
	}
	if reg.ts.admit(t) && reg.gate(t) {
		if q, ok := reg.lu.(QuickChecker); ok && t.Inline && q.Quick(t) {
			t.run()
			return
		}
		s.fw.workers.run(t)
	}
}

// run executes an admitted task, or retires it at once if it was aborted
// while it waited in the task set.
func (t *Task) run() {
	if t.Aborted() {
		if d, ok := t.reg.lu.(Discarder); ok {
			d.Discard(t)
		}
		t.Complete(&Result{Status: scsi.StatusTaskAborted})
		return
	}
	t.reg.lu.Execute(t)
}

// forgetTag removes a finishing task from the tag index (QUERY TASK, ABORT
// TASK); a newer task with the same tag is left alone.
func (s *Session) forgetTag(t *Task) {
	s.mu.Lock()
	if s.tasks[t.Tag] == t {
		delete(s.tasks, t.Tag)
	}
	s.mu.Unlock()
}

// taskDone releases what a finished task held in the task set; Complete
// has already forgotten its tag.
func (s *Session) taskDone(t *Task) {
	for _, next := range t.reg.ts.done(t) {
		if t.reg.gate(next) {
			s.fw.workers.run(next)
		}
	}
	s.wg.Done()
}

// TMFResponse is a task management function outcome (SAM-5 7.11).
type TMFResponse uint8

const (
	TMFComplete     TMFResponse = iota // FUNCTION COMPLETE
	TMFSucceeded                       // FUNCTION SUCCEEDED (QUERY functions: yes)
	TMFRejected                        // FUNCTION REJECTED
	TMFNotSupported                    // not supported
	TMFIncorrectLUN                    // INCORRECT LOGICAL UNIT NUMBER
)

func (r TMFResponse) String() string {
	return [...]string{"FUNCTION COMPLETE", "FUNCTION SUCCEEDED", "FUNCTION REJECTED", "NOT SUPPORTED", "INCORRECT LOGICAL UNIT NUMBER"}[r]
}

// AbortTask aborts the task with the given tag. A task that already
// finished is reported as FUNCTION COMPLETE too (ESXi resets otherwise).
// On return the task's response can no longer reach the initiator.
func (s *Session) AbortTask(tag uint64) TMFResponse {
	s.mu.Lock()
	t := s.tasks[tag]
	s.mu.Unlock()
	if t != nil {
		t.markAborted()
	}
	return TMFComplete
}

// QueryTask reports FUNCTION SUCCEEDED when the task is still in the task set.
func (s *Session) QueryTask(tag uint64) TMFResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tasks[tag] != nil {
		return TMFSucceeded
	}
	return TMFComplete
}

// lookup decodes a TMF's LUN against this nexus's map.
func (s *Session) lookup(raw [8]byte) (scsi.LUN, *luReg) {
	lun, ok := scsi.DecodeLUN(raw)
	if !ok {
		return 0, nil
	}
	return lun, (*s.lunMap.Load())[lun]
}

// AbortTaskSet aborts every task of this nexus on the LU.
func (s *Session) AbortTaskSet(raw [8]byte) TMFResponse {
	_, reg := s.lookup(raw)
	if reg == nil {
		return TMFIncorrectLUN
	}
	for _, t := range reg.ts.tasks(func(t *Task) bool { return t.Session == s }) {
		t.markAborted()
	}
	return TMFComplete
}

// QueryTaskSet reports FUNCTION SUCCEEDED when this nexus has tasks on the LU.
func (s *Session) QueryTaskSet(raw [8]byte) TMFResponse {
	_, reg := s.lookup(raw)
	if reg == nil {
		return TMFIncorrectLUN
	}
	if len(reg.ts.tasks(func(t *Task) bool { return t.Session == s })) > 0 {
		return TMFSucceeded
	}
	return TMFComplete
}

// QueryAsyncEvent reports FUNCTION SUCCEEDED when a unit attention is
// pending for this nexus on the LU.
func (s *Session) QueryAsyncEvent(raw [8]byte) TMFResponse {
	lun, reg := s.lookup(raw)
	if reg == nil {
		return TMFIncorrectLUN
	}
	if s.hasUA(lun) {
		return TMFSucceeded
	}
	return TMFComplete
}

// ClearTaskSet aborts every task on the LU, from every nexus. Other
// nexuses that lost tasks get COMMANDS CLEARED BY ANOTHER INITIATOR.
func (s *Session) ClearTaskSet(raw [8]byte) TMFResponse {
	_, reg := s.lookup(raw)
	if reg == nil {
		return TMFIncorrectLUN
	}
	for _, t := range reg.ts.tasks(func(*Task) bool { return true }) {
		t.markAborted()
		if t.Session != s {
			t.Session.raiseForLUNs([]scsi.LUN{t.LUN}, scsi.ASCCommandsClearedByAnother)
		}
	}
	return TMFComplete
}

// LUNReset aborts every task on the LU, resets the LU's state and raises
// BUS DEVICE RESET FUNCTION OCCURRED on every nexus that sees the LU.
func (s *Session) LUNReset(raw [8]byte) TMFResponse {
	_, reg := s.lookup(raw)
	if reg == nil {
		return TMFIncorrectLUN
	}
	s.fw.resetLUs([]*luReg{reg}, scsi.ASCBusDeviceResetOccurred)
	return TMFComplete
}

// TargetReset resets every LU this nexus can reach (iSCSI TARGET WARM
// RESET; cold reset reports POWER ON OCCURRED instead). The port provider
// drops the target's connections itself after a cold reset.
func (s *Session) TargetReset(cold bool) TMFResponse {
	m := *s.lunMap.Load()
	regs := make([]*luReg, 0, len(m))
	for _, reg := range m {
		regs = append(regs, reg)
	}
	asc := scsi.ASCBusDeviceResetOccurred
	if cold {
		asc = scsi.ASCPowerOnOccurred
	}
	s.fw.resetLUs(regs, asc)
	return TMFComplete
}

// ITNexusReset aborts this nexus's tasks, clears per-nexus LU state (its
// SCSI-2 reservation) and raises I_T NEXUS LOSS OCCURRED on its LUNs.
func (s *Session) ITNexusReset() TMFResponse {
	s.mu.Lock()
	victims := make([]*Task, 0, len(s.tasks))
	for _, t := range s.tasks {
		victims = append(victims, t)
	}
	s.mu.Unlock()
	for _, t := range victims {
		t.markAborted()
	}
	m := *s.lunMap.Load()
	for _, reg := range m {
		if r, ok := reg.lu.(Resetter); ok {
			r.Reset(&s.Nexus)
		}
	}
	s.raiseForLUNs(m.sortedLUNs(), scsi.ASCITNexusLoss)
	return TMFComplete
}

// resetLUs aborts all tasks on the LUs, resets them, and raises asc on every
// session's LUNs that map to them.
func (fw *Framework) resetLUs(regs []*luReg, asc scsi.ASC) {
	for _, reg := range regs {
		for _, t := range reg.ts.tasks(func(*Task) bool { return true }) {
			t.markAborted()
		}
		if r, ok := reg.lu.(Resetter); ok {
			r.Reset(nil)
		}
	}
	want := map[*luReg]bool{}
	for _, reg := range regs {
		want[reg] = true
	}
	for _, sess := range fw.Sessions() {
		var luns []scsi.LUN
		for n, reg := range *sess.lunMap.Load() {
			if want[reg] {
				luns = append(luns, n)
			}
		}
		sess.raiseForLUNs(luns, asc)
	}
}

// markAborted flags the task so its result is dropped, and cancels its
// context. Holding t.mu orders this against a concurrent Complete: either
// the response was already handed to the transport, or it never will be.
func (t *Task) markAborted() {
	t.mu.Lock()
	t.aborted.Store(true)
	t.mu.Unlock()
	t.endContext()
	if g := t.qosHeld.Load(); g != nil {
		g.abortWaiters() // a task held by QoS is retired now, not when its tokens come
	}
}

// noSuchLU answers a command to a LUN with no LU behind it in this
// session's map: INQUIRY reports peripheral qualifier 011b, REQUEST SENSE
// reports the condition, everything else gets LOGICAL UNIT NOT SUPPORTED.
func (s *Session) noSuchLU(t *Task) {
	sense := scsi.IllegalRequest(scsi.ASCLUNotSupported, -1)
	switch t.CDB[0] {
	case scsi.OpInquiry:
		if len(t.CDB) < 6 || t.CDB[1]&0x01 != 0 {
			t.CompleteSense(sense)
			return
		}
		alloc := int(binary.BigEndian.Uint16(t.CDB[3:5]))
		b := make([]byte, 36)
		b[0] = 0x7f // PQ 011b, PDT 1Fh: no LU at this LUN
		b[2] = 0x06 // SPC-4
		b[3] = 0x02
		b[4] = 31
		copy(b[8:16], "COSTAR  ")
		copy(b[16:32], "NO LUN          ")
		copy(b[32:36], "0001")
		if alloc < len(b) {
			b = b[:alloc]
		}
		t.CompleteData(b, nil)
	case scsi.OpRequestSense:
		t.CompleteData(requestSenseData(t.CDB, sense), nil)
	default:
		t.CompleteSense(sense)
	}
}

// requestSenseData formats sense as REQUEST SENSE parameter data, fixed
// format, truncated to the allocation length.
func requestSenseData(cdb []byte, s *scsi.Sense) []byte {
	b := s.Bytes()
	if len(cdb) >= 5 && int(cdb[4]) < len(b) {
		b = b[:cdb[4]]
	}
	return b
}

// SetRelativePortIDs seeds the stable relative port identifiers (restored
// from persisted state) before any port registers.
func (fw *Framework) SetRelativePortIDs(ids map[string]uint16) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for name, id := range ids {
		fw.relIDs[name] = id
		if id >= fw.nextRel {
			fw.nextRel = id + 1
		}
	}
}

// RelativePortIDs returns a copy of the assigned relative port identifiers.
func (fw *Framework) RelativePortIDs() map[string]uint16 {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	out := make(map[string]uint16, len(fw.relIDs))
	for k, v := range fw.relIDs {
		out[k] = v
	}
	return out
}
