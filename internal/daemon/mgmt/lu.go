package mgmt

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/progress"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// ProviderName is the LU provider COMSTAR users know (list-lu -v).
const ProviderName = "sbd"

// parseGUIDArg validates a GUID operand. Malformed input is
// CodeInvalidGUID; a well-formed string that cannot name an LU (not NAA 6)
// is reported as notFound.
func parseGUIDArg(s string, notFound api.Code) (stmf.GUID, error) {
	if !api.IsGUID(s) {
		return stmf.GUID{}, api.Errorf(api.CodeInvalidGUID, s, "must be 32 hexadecimal digits long")
	}
	g, err := stmf.ParseGUID(s)
	if err != nil {
		return g, api.Errorf(notFound, s, "not found")
	}
	return g, nil
}

func findLU(st *store.State, g stmf.GUID) int {
	s := g.String()
	return slices.IndexFunc(st.LUs, func(l store.LU) bool { return l.GUID == s })
}

func viewsOf(st *store.State, g stmf.GUID) []store.View {
	s := g.String()
	var out []store.View
	for _, v := range st.Views {
		if v.GUID == s {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b store.View) int { return a.Entry - b.Entry })
	return out
}

// luLocked renders one configured LU.
func (m *Manager) luLocked(rec store.LU) api.LU {
	g, _ := stmf.ParseGUID(rec.GUID)
	out := api.LU{
		GUID:           rec.GUID,
		Status:         "Online",
		Provider:       ProviderName,
		DataFile:       rec.DataFile,
		MetaFile:       rec.MetaFile,
		AccessState:    "Active",
		ViewEntryCount: len(viewsOf(m.state, g)),
	}
	d, ok := m.open[g]
	if rec.Offline || !ok {
		out.Status = "Offline"
	}
	if !ok {
		out.StatusDetail = m.statusDetailLocked(rec, g) // zvol_lus.go
	}
	if ok {
		in := d.Info()
		out.Available = true
		out.Alias, out.Size, out.BlockSize = in.Alias, in.Size, in.BlockSize
		out.MgmtURL, out.VID, out.PID, out.Serial = in.MgmtURL, in.VID, in.PID, in.Serial
		out.WriteProtect, out.WriteCacheDisabled = in.WP, in.WCD
		out.Thin, out.SoftThreshold = in.Thin, in.SoftThreshold
		out.QoSIOPS, out.QoSMBps = rec.QoSIOPS, rec.QoSMBps
		out.ErrorState = in.ErrorState
		if in.DataFile != "" {
			out.DataFile, out.MetaFile = in.DataFile, in.MetaFile
		}
	}
	m.clusterLULocked(&out) // cluster.go
	return out
}

// ListLUs returns every configured LU in creation order.
func (m *Manager) ListLUs(context.Context, api.Empty) ([]api.LU, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]api.LU, 0, len(m.state.LUs))
	for _, rec := range m.state.LUs {
		out = append(out, m.luLocked(rec))
	}
	return out, nil
}

// fileInUseLocked reports the configured LU already using path (as data or
// meta file), comparing names and, when both exist, the files themselves.
func (m *Manager) fileInUseLocked(path string) bool {
	if path == "" {
		return false
	}
	fi, statErr := os.Stat(path)
	for _, l := range m.state.LUs {
		for _, p := range []string{l.DataFile, l.MetaFile} {
			if p == "" {
				continue
			}
			if p == path || m.sameZvol(p, path) { // zvol_lus.go: /dev/zvol/rdsk/<vol> is /dev/zvol/<vol>
				return true
			}
			if statErr == nil {
				if oi, err := os.Stat(p); err == nil && os.SameFile(fi, oi) {
					return true
				}
			}
		}
	}
	return false
}

func cleanAbs(path, what string) (string, error) {
	if path == "" {
		return "", api.Errorf(api.CodeInvalidArgument, "", "no %s given", what)
	}
	if !filepath.IsAbs(path) {
		return "", api.Errorf(api.CodeInvalidArgument, path, "%s must be an absolute path", what)
	}
	return filepath.Clean(path), nil
}

// propErr converts a property validation failure to an API error.
func propErr(err error) error {
	pe, ok := api.AsPropError(err)
	if !ok {
		return api.Errorf(api.CodeInvalidProp, "", "%v", err)
	}
	switch pe.Reason {
	case api.ReasonLength:
		return api.Errorf(api.CodeInvalidPropLen, pe.Prop, "%s", pe.Reason)
	case api.ReasonBlockSize:
		return api.Errorf(api.CodeInvalidBlockSize, pe.Prop, "%s", pe.Reason)
	case "not modifiable":
		return api.Errorf(api.CodePropNotModify, pe.Prop, "invalid property for modify")
	}
	return api.Errorf(api.CodeInvalidProp, pe.Prop, "%s", pe.Reason)
}

// providerErr classifies an LU provider failure about file.
func providerErr(err error, file string) error {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrMetaFile):
		return api.Errorf(api.CodeMetaFile, file, "meta file error: %v", err)
	case errors.Is(err, ErrFileSize):
		return api.Errorf(api.CodeInvalidSize, file, "file size invalid: %v", err)
	case errors.Is(err, ErrSizeRange):
		return api.Errorf(api.CodeInvalidSize, file, "invalid size: %v", err)
	case errors.Is(err, ErrBlockSize):
		return api.Errorf(api.CodeInvalidBlockSize, file, "invalid block size: %v", err)
	case errors.Is(err, ErrProviderLimit):
		return api.Errorf(api.CodeNotSupported, file, "%v", err)
	}
	return api.Errorf(api.CodeDataFile, file, "data file error: %v", err)
}

// specFromProps builds the provider's create request.
func specFromProps(dataFile string, size uint64, p api.LUProps) (LUSpec, error) {
	spec := LUSpec{DataFile: dataFile, Size: size}
	if p.MetaFile != "" {
		mf, err := cleanAbs(p.MetaFile, "meta file")
		if err != nil {
			return spec, err
		}
		spec.MetaFile = mf
	}
	if p.BlockSize != nil {
		spec.BlockSize = *p.BlockSize
	}
	if p.GUID != "" {
		g, err := stmf.ParseGUID(p.GUID)
		if err != nil {
			return spec, api.Errorf(api.CodeInvalidProp, "guid", "bad format")
		}
		spec.GUID = g
	}
	if p.OUI != "" {
		b, _ := hex.DecodeString("00" + p.OUI)
		oui := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		spec.OUI = &oui
	}
	if p.HostID != "" {
		var h [4]byte
		_, _ = hex.Decode(h[:], []byte(p.HostID))
		spec.HostID = &h
	}
	str := func(v *string) string {
		if v == nil {
			return ""
		}
		return *v
	}
	spec.Alias, spec.MgmtURL = str(p.Alias), str(p.MgmtURL)
	spec.VID, spec.PID, spec.Serial = str(p.VID), str(p.PID), str(p.Serial)
	spec.WCD = p.WCD != nil && *p.WCD
	spec.Thin = p.Thin != nil && *p.Thin
	if p.SoftThreshold != nil {
		spec.SoftThreshold = *p.SoftThreshold
	}
	spec.WP = p.WP != nil && *p.WP
	if p.Preallocation != api.PreallocOff {
		spec.Preallocation = p.Preallocation
	}
	if spec.Preallocation != "" && spec.Thin {
		return spec, api.Errorf(api.CodeInvalidProp, "preallocation", "bad format: a thin LU is not preallocated")
	}
	return spec, nil
}

// CreateLU is create-lu: the provider writes the LU's metadata with its
// data, the LU is registered (views kept from an earlier delete-lu -k come
// back) and recorded.
func (m *Manager) CreateLU(ctx context.Context, req api.CreateLURequest) (api.LU, error) {
	path, err := cleanAbs(req.DataFile, "data file")
	if err != nil {
		return api.LU{}, err
	}
	if err := req.Props.Validate(false); err != nil {
		return api.LU{}, propErr(err)
	}
	spec, err := specFromProps(path, req.Size, req.Props)
	if err != nil {
		return api.LU{}, err
	}
	if blk := max(spec.BlockSize, api.MinBlockSize); spec.Size%uint64(blk) != 0 {
		return api.LU{}, api.Errorf(api.CodeInvalidSize, path, "invalid size: %d is not a multiple of the block size %d", spec.Size, blk)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range []string{spec.DataFile, spec.MetaFile} {
		if m.fileInUseLocked(f) {
			return api.LU{}, api.Errorf(api.CodeFileInUse, f, "in use")
		}
	}
	if !spec.GUID.IsZero() && findLU(m.state, spec.GUID) >= 0 {
		return api.LU{}, api.Errorf(api.CodeGUIDInUse, spec.GUID.String(), "guid in use")
	}
	progress.Phase(ctx, "creating the LU on "+path)
	unit, err := m.lus.Create(ctx, spec)
	if err != nil {
		return api.LU{}, providerErr(err, path)
	}
	return m.adoptLocked(ctx, unit, "created", true, req.Props)
}

// ImportLU is import-lu.
func (m *Manager) ImportLU(ctx context.Context, req api.ImportLURequest) (api.LU, error) {
	path, err := cleanAbs(req.File, "file")
	if err != nil {
		return api.LU{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fileInUseLocked(path) {
		return api.LU{}, api.Errorf(api.CodeFileInUse, path, "in use")
	}
	progress.Phase(ctx, "opening the LU stored in "+path)
	unit, err := m.lus.Import(ctx, path, "")
	if err != nil {
		return api.LU{}, providerErr(err, path)
	}
	info := unit.Info()
	for _, f := range []string{info.DataFile, info.MetaFile} {
		if f != path && m.fileInUseLocked(f) {
			m.closeLU(unit)
			return api.LU{}, api.Errorf(api.CodeFileInUse, f, "in use")
		}
	}
	return m.adoptLocked(ctx, unit, "imported", false, api.LUProps{})
}

// adoptLocked registers a freshly opened LU and records it. A created LU
// that cannot be adopted is discarded (its new file removed, a grown one
// shrunk back); an imported one is only closed. A cancelled call stops
// here, before anything is registered: past this point it completes.
// The LU gets the QoS limits of props.
func (m *Manager) adoptLocked(ctx context.Context, unit LU, verb string, created bool, props api.LUProps) (api.LU, error) {
	g := unit.GUID()
	drop := func() { m.closeLU(unit) }
	if d, ok := unit.(Discarder); ok && created {
		drop = d.Discard
	}
	progress.Phase(ctx, "registering LU "+g.String())
	if err := ctx.Err(); err != nil {
		drop()
		return api.LU{}, fmt.Errorf("LU %s not %s: %w", g, verb, err)
	}
	if findLU(m.state, g) >= 0 {
		drop()
		return api.LU{}, api.Errorf(api.CodeGUIDInUse, g.String(), "guid in use")
	}
	if err := m.fw.RegisterLU(unit); err != nil {
		drop()
		return api.LU{}, api.Errorf(api.CodeGUIDInUse, g.String(), "guid in use")
	}
	info := unit.Info()
	next := m.state.Clone()
	rec := store.LU{GUID: g.String(), DataFile: info.DataFile, MetaFile: info.MetaFile}
	applyQoSProps(&rec, props)
	if err := m.fw.SetQoS(g, qosLimits(rec)); err != nil {
		_ = m.fw.DeregisterLU(g, true)
		drop()
		return api.LU{}, api.Errorf(api.CodeInvalidProp, "qos", "%v", err)
	}
	next.LUs = append(next.LUs, rec)
	if err := m.commitLocked(next, func() {
		_ = m.fw.DeregisterLU(g, true)
		m.forgetQoSLocked(g)
		drop()
	}); err != nil {
		return api.LU{}, err
	}
	m.open[g] = unit
	m.log.Info("LU "+verb, "guid", g, "data_file", info.DataFile, "size", info.Size)
	return m.luLocked(next.LUs[len(next.LUs)-1]), nil
}

// luIndexLocked finds a configured LU by GUID operand.
func (m *Manager) luIndexLocked(guid string) (stmf.GUID, int, error) {
	g, err := parseGUIDArg(guid, api.CodeLUNotFound)
	if err != nil {
		return g, -1, err
	}
	i := findLU(m.state, g)
	if i < 0 {
		return g, -1, api.Errorf(api.CodeLUNotFound, guid, "not found")
	}
	return g, i, nil
}

// lookupLULocked finds the LU a modify-lu names, by GUID or by file.
func (m *Manager) lookupLULocked(guid, file string) (stmf.GUID, int, error) {
	if guid != "" {
		return m.luIndexLocked(guid)
	}
	path, err := cleanAbs(file, "file")
	if err != nil {
		return stmf.GUID{}, -1, err
	}
	for i, l := range m.state.LUs {
		if l.DataFile == path || l.MetaFile == path {
			g, _ := stmf.ParseGUID(l.GUID)
			return g, i, nil
		}
	}
	return stmf.GUID{}, -1, api.Errorf(api.CodeLUNotFound, file, "not found")
}

// ModifyLU is modify-lu: an online resize (initiators get CAPACITY DATA
// HAS CHANGED) and/or alias, mgmt-url, wcd, wp. The provider persists them
// with the LU's metadata; the daemon's own state does not change.
func (m *Manager) ModifyLU(ctx context.Context, req api.ModifyLURequest) (api.LU, error) {
	if err := req.Props.Validate(true); err != nil {
		return api.LU{}, propErr(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g, i, err := m.lookupLULocked(req.GUID, req.File)
	if err != nil {
		return api.LU{}, err
	}
	unit, ok := m.open[g]
	if !ok {
		return api.LU{}, api.Errorf(api.CodeDataFile, m.state.LUs[i].DataFile, "data file error: the backing store is not open")
	}
	if info := unit.Info(); req.Size > 0 && req.Size != info.Size {
		if info.BlockSize > 0 && req.Size%uint64(info.BlockSize) != 0 {
			return api.LU{}, api.Errorf(api.CodeInvalidSize, m.state.LUs[i].DataFile, "invalid size: %d is not a multiple of the block size %d", req.Size, info.BlockSize)
		}
		rs, ok := unit.(Resizer)
		if !ok {
			return api.LU{}, api.Errorf(api.CodeNotSupported, "size", "the LU provider cannot resize LUs yet")
		}
		progress.Phase(ctx, fmt.Sprintf("resizing LU %s to %d bytes", g, req.Size))
		if err := rs.Resize(ctx, req.Size); err != nil {
			return api.LU{}, providerErr(err, m.state.LUs[i].DataFile)
		}
		m.fw.RaiseUA(g, scsi.ASCCapacityDataChanged)
		m.log.Info("LU resized", "guid", g, "size", req.Size)
	}
	if lp := req.Props.WithoutQoS(); !lp.IsEmpty() {
		ps, ok := unit.(PropSetter)
		if !ok {
			return api.LU{}, api.Errorf(api.CodeNotSupported, "", "the LU provider cannot change properties yet")
		}
		c := LUChange{Alias: req.Props.Alias, MgmtURL: req.Props.MgmtURL, WCD: req.Props.WCD, WP: req.Props.WP, SoftThreshold: req.Props.SoftThreshold}
		if err := ps.SetProps(ctx, c); err != nil {
			return api.LU{}, providerErr(err, m.state.LUs[i].DataFile)
		}
		m.log.Info("LU properties changed", "guid", g)
	}
	if req.Props.QoSIOPS != nil || req.Props.QoSMBps != nil {
		if err := m.setQoSLocked(g, i, req.Props); err != nil {
			return api.LU{}, err
		}
	}
	return m.luLocked(m.state.LUs[i]), nil
}

// DeleteLU is delete-lu: the LU is deregistered and forgotten (its backing
// store is kept). Without KeepViews its view entries go too; with it they
// stay and apply again when an LU with this GUID comes back. As in
// COMSTAR, deleting a GUID that only has views left removes those views.
func (m *Manager) DeleteLU(_ context.Context, req api.DeleteLURequest) (api.Empty, error) {
	g, err := parseGUIDArg(req.GUID, api.CodeLUNotFound)
	if err != nil {
		return api.Empty{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findLU(m.state, g)
	views := viewsOf(m.state, g)
	if i < 0 && (req.KeepViews || len(views) == 0) {
		return api.Empty{}, api.Errorf(api.CodeLUNotFound, req.GUID, "not found")
	}
	next := m.state.Clone()
	if i >= 0 {
		next.LUs = slices.Delete(next.LUs, i, i+1)
	}
	if !req.KeepViews {
		s := g.String()
		next.Views = slices.DeleteFunc(next.Views, func(v store.View) bool { return v.GUID == s })
	}
	unit := m.open[g]
	registered := i >= 0 && unit != nil && !m.state.LUs[i].Offline
	if registered {
		_ = m.fw.DeregisterLU(g, true)
	}
	if !req.KeepViews {
		for _, v := range views {
			_ = m.fw.RemoveView(g, viewEntry(v))
		}
	}
	undo := func() {
		if !req.KeepViews {
			for _, v := range views {
				if _, err := m.fw.AddView(g, viewEntry(v), false); err != nil {
					m.log.Error("restoring view entry after a failed delete-lu", "guid", g, "entry", v.Entry, "err", err)
				}
			}
		}
		if registered {
			_ = m.fw.RegisterLU(unit)
		}
	}
	if err := m.commitLocked(next, undo); err != nil {
		return api.Empty{}, err
	}
	if unit != nil {
		delete(m.open, g)
		m.closeLU(unit)
	}
	m.forgetQoSLocked(g)
	m.log.Info("LU deleted", "guid", g, "keep_views", req.KeepViews, "views_removed", !req.KeepViews && len(views) > 0)
	return api.Empty{}, nil
}

// OnlineLU is online-lu. An LU whose backing store could not be opened is
// opened again first. Bringing an offline LU online is also how an
// administrator acknowledges a remembered write-back failure (list-lu -v
// "Error State"): it is cleared, and SYNCHRONIZE CACHE answers GOOD again.
func (m *Manager) OnlineLU(ctx context.Context, req api.GUIDRequest) (api.Empty, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, i, err := m.luIndexLocked(req.GUID)
	if err != nil {
		return api.Empty{}, err
	}
	rec := m.state.LUs[i]
	unit, opened := m.open[g]
	if opened && !rec.Offline {
		return api.Empty{}, nil
	}
	if !opened {
		d, err := m.reopen(ctx, rec, g)
		if err != nil {
			m.setWaitingLocked(g, err)
			return api.Empty{}, providerErr(err, rec.DataFile)
		}
		if d.GUID() != g {
			m.closeLU(d)
			return api.Empty{}, api.Errorf(api.CodeDataFile, rec.DataFile, "data file error: it now holds LU %s", d.GUID())
		}
		unit = d
	}
	if c, ok := unit.(ErrorClearer); ok && c.ClearError() {
		m.log.Warn("LU write-back failure cleared by online-lu; data written before it may be lost", "guid", g)
	}
	if err := m.fw.RegisterLU(unit); err != nil {
		if !opened {
			m.closeLU(unit)
		}
		return api.Empty{}, api.Errorf(api.CodeBusy, req.GUID, "resource busy: %v", err)
	}
	next := m.state.Clone()
	next.LUs[i].Offline = false
	if err := m.commitLocked(next, func() {
		_ = m.fw.DeregisterLU(g, true)
		if !opened {
			m.closeLU(unit)
		}
	}); err != nil {
		return api.Empty{}, err
	}
	m.open[g] = unit
	delete(m.waiting, g)
	m.log.Info("LU online", "guid", g)
	return api.Empty{}, nil
}

// OfflineLU is offline-lu: the LU leaves every LUN map (its views stay) and
// its backing store stays open.
func (m *Manager) OfflineLU(_ context.Context, req api.GUIDRequest) (api.Empty, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, i, err := m.luIndexLocked(req.GUID)
	if err != nil {
		return api.Empty{}, err
	}
	if m.state.LUs[i].Offline {
		return api.Empty{}, nil
	}
	unit, registered := m.open[g]
	if registered {
		_ = m.fw.DeregisterLU(g, true)
	}
	next := m.state.Clone()
	next.LUs[i].Offline = true
	if err := m.commitLocked(next, func() {
		if registered {
			_ = m.fw.RegisterLU(unit)
		}
	}); err != nil {
		return api.Empty{}, err
	}
	m.log.Info("LU offline", "guid", g)
	return api.Empty{}, nil
}
