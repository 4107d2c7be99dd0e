package stmf

import "github.com/costar-project/costar/scsi"

// LUHost is what the framework offers an LU it registered: unit
// attentions and task-set actions on the I_T nexuses that reach the LU,
// and the names of target ports. It is all an LU may ask of the framework.
type LUHost interface {
	// RaiseUA queues asc on the LU for the sessions whose nexus matches
	// (reservation changes target specific I_T nexuses; MODE SELECT
	// notifies every nexus but its own). A nil match selects all.
	RaiseUA(asc scsi.ASC, match func(n *Nexus) bool)
	// AbortTasks aborts the tasks in the LU's task set (running or
	// waiting, from every I_T nexus) for which match returns true, and
	// returns how many. An aborted task's response never reaches its
	// initiator (PERSISTENT RESERVE OUT PREEMPT AND ABORT). match runs
	// with the task set's lock held: it must be quick and not block.
	AbortTasks(match func(t *Task) bool) int
	// TargetPort returns the name of the target port with relative target
	// port identifier rel, registered now or before (REGISTER AND MOVE).
	TargetPort(rel uint16) (name string, ok bool)
	// TargetPortCount returns how many registered target ports the LU is
	// reachable through now (a view of it names their target's group, or
	// all targets): standard INQUIRY sets MULTIP when it is more than one.
	TargetPortCount() int
}

// Attacher is implemented by an LU that wants its host: RegisterLU calls
// Attach before the LU becomes reachable through a view.
type Attacher interface {
	Attach(h LUHost)
}

// luHost is the LUHost of the LU registered under g.
type luHost struct {
	fw *Framework
	g  GUID
}

func (h luHost) RaiseUA(asc scsi.ASC, match func(n *Nexus) bool) {
	h.fw.raiseUAWhere(h.g, asc, match)
}

func (h luHost) AbortTasks(match func(t *Task) bool) int {
	h.fw.mu.Lock()
	reg := h.fw.lus[h.g]
	h.fw.mu.Unlock()
	if reg == nil {
		return 0
	}
	victims := reg.ts.tasks(match)
	for _, t := range victims {
		t.markAborted()
	}
	return len(victims)
}

func (h luHost) TargetPort(rel uint16) (string, bool) {
	h.fw.mu.Lock()
	defer h.fw.mu.Unlock()
	for name, id := range h.fw.relIDs {
		if id == rel {
			return name, true
		}
	}
	return "", false
}

func (h luHost) TargetPortCount() int {
	h.fw.mu.Lock()
	defer h.fw.mu.Unlock()
	entries := h.fw.views[h.g]
	n := 0
	for _, p := range h.fw.ports {
		for _, e := range entries {
			if e.TargetGroup == "" || h.fw.tgs[e.TargetGroup][p.TargetName] {
				n++
				break
			}
		}
	}
	return n
}

// attach hands lu (or the LU an adapter wraps) its host.
func (fw *Framework) attach(lu LogicalUnit) {
	a, ok := lu.(Attacher)
	if !ok {
		a, ok = unwrapLU(lu).(Attacher)
	}
	if ok {
		a.Attach(luHost{fw: fw, g: lu.GUID()})
	}
}
