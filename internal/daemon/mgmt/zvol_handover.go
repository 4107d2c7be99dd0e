package mgmt

import (
	"context"
	"errors"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/stmf"
)

// Zvol LUs handed between cluster nodes: the pool is imported on one node
// at a time (a takeover hook imports it, a release hook exports it), so a
// standby node keeps the LU configured and waiting for its zvol. The
// cluster glue (internal/daemon/cluster_hooks.go) asks for what it needs
// here rather than waiting for WatchZvols' next round.

// HandoverLU is what the cluster glue knows of a configured LU.
type HandoverLU struct {
	GUID     string
	DataFile string
	Zvol     string // the volume, "" when the LU is not on a zvol
	Alias    string // "" while the LU is not open here
	Online   bool   // configured online (not offline-lu)
	Open     bool   // its backing store is open here (and registered when Online)
}

// HandoverLUs lists the configured LUs.
func (m *Manager) HandoverLUs() []HandoverLU {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]HandoverLU, 0, len(m.state.LUs))
	for _, rec := range m.state.LUs {
		out = append(out, m.handoverLocked(rec))
	}
	return out
}

// HandoverLUOf returns one configured LU (ok false: not configured).
func (m *Manager) HandoverLUOf(guid string) (HandoverLU, bool) {
	g, err := stmf.ParseGUID(guid)
	if err != nil {
		return HandoverLU{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findLU(m.state, g)
	if i < 0 {
		return HandoverLU{}, false
	}
	return m.handoverLocked(m.state.LUs[i]), true
}

func (m *Manager) handoverLocked(rec store.LU) HandoverLU {
	g, _ := stmf.ParseGUID(rec.GUID)
	h := HandoverLU{GUID: rec.GUID, DataFile: rec.DataFile, Online: !rec.Offline}
	if zp, ok := m.lus.(ZvolProvider); ok && rec.MetaFile == "" {
		h.Zvol, _ = zp.ZvolName(rec.DataFile)
	}
	if d, ok := m.open[g]; ok {
		h.Open, h.Alias = true, d.Info().Alias
	}
	return h
}

// handoverGUID is the zvol provider and the LU a handover call names.
func (m *Manager) handoverGUID(guid string) (ZvolProvider, stmf.GUID, error) {
	zp, err := m.zvols()
	if err != nil {
		return nil, stmf.GUID{}, err
	}
	g, err := stmf.ParseGUID(guid)
	if err != nil {
		return nil, g, api.Errorf(api.CodeInvalidGUID, guid, "not an NAA type 6 identifier")
	}
	return zp, g, nil
}

// RetryZvolLU tries now to open configured LU guid whose zvol was missing
// (a takeover hook has just imported its pool); an LU already open, or not
// on a zvol, is left as it is. The error says why it is still waiting.
func (m *Manager) RetryZvolLU(ctx context.Context, guid string) error {
	zp, g, err := m.handoverGUID(guid)
	if err != nil {
		return err
	}
	m.mu.Lock()
	i := findLU(m.state, g)
	if i < 0 {
		m.mu.Unlock()
		return api.Errorf(api.CodeLUNotFound, guid, "not found")
	}
	rec := m.state.LUs[i]
	_, isZvol := zp.ZvolName(rec.DataFile)
	skip := m.open[g] != nil || !isZvol || rec.MetaFile != "" || m.parked[g]
	m.mu.Unlock()
	if skip {
		return nil
	}
	return m.openWaitingZvol(ctx, zp, rec, g, zvolRetryBudget)
}

// ParkZvolLU closes zvol LU guid (deregistered, its views kept) so that
// its pool can be exported, and keeps WatchZvols from opening it again
// until UnparkZvolLU. The LU stays configured, waiting for its zvol with
// reason why. An LU not on a zvol is left open.
func (m *Manager) ParkZvolLU(guid, why string) error {
	zp, g, err := m.handoverGUID(guid)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findLU(m.state, g)
	if i < 0 {
		return api.Errorf(api.CodeLUNotFound, guid, "not found")
	}
	rec := m.state.LUs[i]
	if _, ok := zp.ZvolName(rec.DataFile); !ok || rec.MetaFile != "" {
		return nil
	}
	if m.parked == nil {
		m.parked = map[stmf.GUID]bool{}
	}
	m.parked[g] = true
	unit := m.open[g]
	if unit == nil {
		return nil
	}
	if !rec.Offline {
		_ = m.fw.DeregisterLU(g, true)
	}
	delete(m.open, g)
	m.closeLU(unit)
	m.setWaitingLocked(g, errors.New(why))
	m.log.Info("LU closed; its zvol may be exported", "guid", g, "data_file", rec.DataFile, "reason", why)
	return nil
}

// UnparkZvolLU lets WatchZvols open the LU again when its zvol is (still
// or again) there.
func (m *Manager) UnparkZvolLU(guid string) {
	g, err := stmf.ParseGUID(guid)
	if err != nil {
		return
	}
	m.mu.Lock()
	delete(m.parked, g)
	m.mu.Unlock()
}

// adoptWaitingZvolLU, in cluster mode, configures LU w whose zvol could
// not be opened here (cause: its pool is imported on another node, or on
// none) as waiting for its zvol, as Restore does with an LU whose pool is
// missing; its properties live in the zvol and are read when it opens,
// and ReopenLU never writes to a zvol holding another LU. ok false: not
// such an LU, the import's error stands.
func (m *Manager) adoptWaitingZvolLU(file string, w api.ConfigLU, cause error) (ok bool, err error) {
	zp, isZ := m.lus.(ZvolProvider)
	if m.cluster == nil || !isZ || w.MetaFile != "" || !api.IsCode(cause, api.CodeDataFile) {
		return false, nil
	}
	if _, isZ = zp.ZvolName(file); !isZ {
		return false, nil
	}
	g, err := stmf.ParseGUID(w.GUID)
	if err != nil || g.IsZero() {
		return true, api.Errorf(api.CodeInvalidGUID, w.GUID, "not an NAA type 6 identifier")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if findLU(m.state, g) >= 0 {
		return true, api.Errorf(api.CodeGUIDInUse, g.String(), "guid in use")
	}
	if m.fileInUseLocked(file) {
		return true, api.Errorf(api.CodeFileInUse, file, "in use")
	}
	rec := store.LU{GUID: g.String(), DataFile: file, QoSIOPS: w.QoSIOPS, QoSMBps: w.QoSMBps}
	if err := m.fw.SetQoS(g, qosLimits(rec)); err != nil {
		return true, api.Errorf(api.CodeInvalidProp, "qos", "%v", err)
	}
	next := m.state.Clone()
	next.LUs = append(next.LUs, rec)
	if err := m.commitLocked(next, func() {
		m.forgetQoSLocked(g)
		delete(m.waiting, g)
	}); err != nil {
		return true, err
	}
	m.setWaitingLocked(g, cause)
	m.log.Info("LU configured, waiting for its zvol (its pool is imported elsewhere)", "guid", g, "data_file", file)
	return true, nil
}

// waitingZvol reports a cluster node's LU configured but waiting for its
// zvol (adoptWaitingZvolLU).
func (m *Manager) waitingZvol(guid string) bool {
	h, ok := m.HandoverLUOf(guid)
	return ok && m.cluster != nil && h.Zvol != "" && !h.Open
}
