package mgmt

import (
	"context"
	"errors"
	"os"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/stmf"
)

// The LU steps of an apply: the single verbs, plus undos for what their
// own undo (written for a failed save) does not cover inside a transaction.

// forgetOnUndo makes a rollback drop the LU an apply step opened (the
// verb's undo closes it; m.open must not keep it).
func (m *Manager) forgetOnUndo(guid string) {
	g, err := stmf.ParseGUID(guid)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onUndoLocked(func() { delete(m.open, g) })
}

// applyImportLU imports an LU's backing store and checks that it holds the
// LU the file names, with the create-only properties it gives.
func (m *Manager) applyImportLU(ctx context.Context, file string, w api.ConfigLU) error {
	lu, err := m.ImportLU(ctx, api.ImportLURequest{File: file})
	if err != nil {
		if ok, werr := m.adoptWaitingZvolLU(file, w, err); ok { // zvol_handover.go
			return werr
		}
		return err
	}
	m.forgetOnUndo(lu.GUID)
	if lu.GUID != w.GUID {
		return api.Errorf(api.CodeDataFile, file, "holds LU %s, not %s", lu.GUID, w.GUID)
	}
	in, err := m.openInfo(w.GUID)
	if err != nil {
		return err
	}
	return checkCreateOnly(w, in)
}

// applyImportedProps sets the modifiable properties and size of an LU just
// imported where they differ from the file.
func (m *Manager) applyImportedProps(ctx context.Context, w api.ConfigLU) error {
	if m.waitingZvol(w.GUID) {
		return nil // adopted waiting for its zvol: its properties are read when it opens
	}
	in, err := m.openInfo(w.GUID)
	if err != nil {
		return err
	}
	var size uint64
	if w.Size > in.Size {
		size = w.Size
	} else if w.Size != 0 && w.Size < in.Size {
		return api.Errorf(api.CodeInvalidSize, w.GUID, "size %d is smaller than the LU's %d: apply does not shrink LUs", w.Size, in.Size)
	}
	props, _ := luChanges(w, in)
	q, _ := qosChanges(w, 0, 0) // a freshly imported LU has no limits yet
	props.QoSIOPS, props.QoSMBps = q.QoSIOPS, q.QoSMBps
	if size == 0 && props.IsEmpty() {
		return nil
	}
	return m.applyModifyLU(ctx, w.GUID, size, props)
}

// openInfo is what an open LU reports about itself.
func (m *Manager) openInfo(guid string) (LUInfo, error) {
	g, err := stmf.ParseGUID(guid)
	if err != nil {
		return LUInfo{}, api.Errorf(api.CodeInvalidGUID, guid, "not an NAA type 6 identifier")
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	unit, ok := m.open[g]
	if !ok {
		return LUInfo{}, api.Errorf(api.CodeDataFile, guid, "data file error: the backing store is not open")
	}
	return unit.Info(), nil
}

// applyCreateLU creates an LU whose backing store does not exist yet; a
// rollback removes the files it created.
func (m *Manager) applyCreateLU(ctx context.Context, req api.CreateLURequest) error {
	files := []string{req.DataFile}
	if req.Props.MetaFile != "" {
		files = append(files, req.Props.MetaFile)
	}
	for _, f := range files {
		if _, err := os.Lstat(f); err == nil || !errors.Is(err, os.ErrNotExist) {
			return api.Errorf(api.CodeDataFile, f, "exists now: apply creates only backing stores that do not exist")
		}
	}
	lu, err := m.CreateLU(ctx, req)
	if err != nil {
		return err
	}
	m.forgetOnUndo(lu.GUID)
	m.mu.Lock()
	m.onUndoLocked(func() {
		for _, f := range files {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				m.log.Error("apply rolled back: removing the backing store it created", "file", f, "err", err)
			}
		}
	})
	m.mu.Unlock()
	return nil
}

// applyModifyLU is modify-lu; a rollback sets the old properties back (a
// grown LU stays grown: shrinking is not an undo apply makes).
func (m *Manager) applyModifyLU(ctx context.Context, guid string, size uint64, props api.LUProps) error {
	g, err := stmf.ParseGUID(guid)
	if err != nil {
		return api.Errorf(api.CodeInvalidGUID, guid, "not an NAA type 6 identifier")
	}
	m.mu.Lock()
	unit, ok := m.open[g]
	m.mu.Unlock()
	if !ok {
		return api.Errorf(api.CodeDataFile, guid, "data file error: the backing store is not open")
	}
	old := unit.Info()
	if _, err := m.ModifyLU(ctx, api.ModifyLURequest{GUID: guid, Size: size, Props: props}); err != nil {
		return err
	}
	ps, ok := unit.(PropSetter)
	if !ok || props.IsEmpty() {
		return nil
	}
	back := LUChange{}
	if props.Alias != nil {
		back.Alias = &old.Alias
	}
	if props.MgmtURL != nil {
		back.MgmtURL = &old.MgmtURL
	}
	if props.WCD != nil {
		back.WCD = &old.WCD
	}
	if props.WP != nil {
		back.WP = &old.WP
	}
	if props.SoftThreshold != nil {
		back.SoftThreshold = &old.SoftThreshold
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onUndoLocked(func() {
		if err := ps.SetProps(ctx, back); err != nil {
			m.log.Error("apply rolled back: restoring LU properties", "guid", guid, "err", err)
		}
	})
	return nil
}

// applyDeleteLU is delete-lu -k; a rollback opens the LU again.
func (m *Manager) applyDeleteLU(ctx context.Context, req api.DeleteLURequest, rec store.LU) error {
	if _, err := m.DeleteLU(ctx, req); err != nil {
		return err
	}
	g, _ := stmf.ParseGUID(rec.GUID)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onUndoLocked(func() {
		unit, err := m.reopen(ctx, rec, g)
		if err != nil {
			m.log.Error("apply rolled back: reopening a deleted LU", "guid", rec.GUID, "err", err)
			m.setWaitingLocked(g, err)
			return
		}
		m.open[g] = unit
		if !rec.Offline {
			if err := m.fw.RegisterLU(unit); err != nil {
				m.log.Error("apply rolled back: registering a deleted LU", "guid", rec.GUID, "err", err)
			}
		}
	})
	return nil
}

// applyALUA is set-alua-state; a rollback sets the old live state back
// (the verb saves before it changes the framework, so its commit records
// no undo).
func (m *Manager) applyALUA(ctx context.Context, req api.SetALUAStateRequest) error {
	m.mu.Lock()
	old, set := m.fw.ALUAStates()[uint16(req.Tag)]
	m.mu.Unlock()
	if !set {
		old = stmf.ALUAActiveOptimized
	}
	if _, err := m.SetALUAState(ctx, req); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onUndoLocked(func() { _ = m.fw.SetALUAState(uint16(req.Tag), old) })
	return nil
}

// applyStoredQoS changes the stored QoS limits of an LU that is not open;
// stmf holds them until it is registered.
func (m *Manager) applyStoredQoS(guid string, props api.LUProps) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, i, err := m.luIndexLocked(guid)
	if err != nil {
		return err
	}
	return m.setQoSLocked(g, i, props)
}
