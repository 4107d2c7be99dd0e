package stmf

// AbortTasksWhere aborts the tasks in the LU's task set (running or
// waiting, from every I_T nexus) for which match returns true, and returns
// how many it aborted. An aborted task's response never reaches its
// initiator. LUs use it for PERSISTENT RESERVE OUT PREEMPT AND ABORT,
// which aborts the preempted I_T nexuses' tasks. match is called with the
// task set's lock held: it must be quick and must not block.
func (fw *Framework) AbortTasksWhere(g GUID, match func(t *Task) bool) int {
	fw.mu.Lock()
	reg := fw.lus[g]
	fw.mu.Unlock()
	if reg == nil {
		return 0
	}
	victims := reg.ts.tasks(match)
	for _, t := range victims {
		t.markAborted()
	}
	return len(victims)
}
