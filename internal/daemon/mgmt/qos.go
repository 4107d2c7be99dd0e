package mgmt

import (
	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/stmf"
)

// QoS limits (modify-lu -p qos-iops=N -p qos-mbps=M) are kept in the
// daemon's state, not in the LU's metadata: they are this target's policy
// for sharing its bandwidth, not a property of the data, so an LU imported
// elsewhere does not carry them, and every store kind gets them alike.

// qosLimits is the stmf form of a stored LU's limits (MiB/s in bytes).
func qosLimits(rec store.LU) stmf.QoSLimits {
	return stmf.QoSLimits{IOPS: rec.QoSIOPS, BytesPerSec: rec.QoSMBps << 20}
}

// applyQoSProps copies the QoS properties that are set onto rec.
func applyQoSProps(rec *store.LU, p api.LUProps) {
	if p.QoSIOPS != nil {
		rec.QoSIOPS = *p.QoSIOPS
	}
	if p.QoSMBps != nil {
		rec.QoSMBps = *p.QoSMBps
	}
}

// setQoSLocked changes LU i's limits live and saves them; when the save
// fails the old limits come back.
func (m *Manager) setQoSLocked(g stmf.GUID, i int, p api.LUProps) error {
	next := m.state.Clone()
	rec := &next.LUs[i]
	old := m.state.LUs[i]
	applyQoSProps(rec, p)
	if err := m.fw.SetQoS(g, qosLimits(*rec)); err != nil {
		return api.Errorf(api.CodeInvalidProp, "qos", "%v", err)
	}
	if err := m.commitLocked(next, func() { _ = m.fw.SetQoS(g, qosLimits(old)) }); err != nil {
		return err
	}
	m.log.Info("LU QoS limits changed", "guid", g, "qos_iops", rec.QoSIOPS, "qos_mbps", rec.QoSMBps)
	return nil
}

// forgetQoSLocked drops a deleted LU's limits, so a new LU with its GUID
// starts unlimited.
func (m *Manager) forgetQoSLocked(g stmf.GUID) { _ = m.fw.SetQoS(g, stmf.QoSLimits{}) }
