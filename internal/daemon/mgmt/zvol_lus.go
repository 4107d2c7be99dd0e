package mgmt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/stmf"
)

// ZFS volumes (beyond COMSTAR): create-lu -p zvol=, import-lu -p guid=,
// snapshot-lu, clone-lu, delete-lu --destroy-zvol, and LUs whose zvol is
// missing at start-up (pool not imported yet) waiting, offline, until it
// appears.

// ZvolProvider is implemented by LU providers that manage ZFS volumes.
// Errors from the zfs command wrap ErrZFS.
type ZvolProvider interface {
	// ZvolName returns the volume a data file path names, ok false when
	// the path is not a zvol device path.
	ZvolName(path string) (name string, ok bool)
	// ZvolPath validates a volume name and returns its device path.
	ZvolPath(name string) (string, error)
	// CreateZvolLU creates sparse volume name (volBlock 0: the pool's
	// default volblocksize) and an LU on it; on failure nothing is left.
	CreateZvolLU(ctx context.Context, name string, size uint64, volBlock uint32, spec LUSpec) (LU, error)
	// ImportZvolLU opens the LU of zvol device path file: a copy gets a
	// new GUID, guid (when not zero) names the LU whatever it holds.
	ImportZvolLU(ctx context.Context, file string, guid stmf.GUID, alias *string) (LU, error)
	// ReopenLU opens a configured LU again only if its backing store
	// still holds LU guid as its own; nothing is written otherwise.
	ReopenLU(ctx context.Context, file, metaFile string, guid stmf.GUID) (LU, error)
	// SnapshotLU takes snapshot snap of the LU's volume (after flushing
	// it) and returns its full name.
	SnapshotLU(ctx context.Context, d LU, snap string) (string, error)
	// CloneLU clones snapshot (pool/vol@snap) to volume dest ("" picks
	// "<vol>-<snap>") and opens a new LU on it; on failure the clone is
	// destroyed.
	CloneLU(ctx context.Context, snapshot, dest string, spec LUSpec) (LU, error)
	// DestroyZvol destroys a volume (not recursively).
	DestroyZvol(ctx context.Context, name string) error
}

// ErrZFS is wrapped by provider errors that are failures of the zfs
// command (the message holds the command and its stderr).
var ErrZFS = errors.New("zfs command failed")

// zvolWaitLog is how often the reason an LU is still waiting is logged
// again when it has not changed.
const zvolWaitLog = 5 * time.Minute

// waitState is why a configured LU is not open.
type waitState struct {
	reason string
	logged time.Time
}

func (m *Manager) zvols() (ZvolProvider, error) {
	zp, ok := m.lus.(ZvolProvider)
	if !ok {
		return nil, api.Errorf(api.CodeNotSupported, "", "the LU provider does not manage ZFS volumes")
	}
	return zp, nil
}

// zfsErr classifies a provider failure: the zfs command's own, or as
// providerErr does.
func zfsErr(err error, subject string) error {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrZFS):
		return api.Errorf(api.CodeZFS, subject, "%v", err)
	}
	return providerErr(err, subject)
}

// CreateZvolLU is create-lu -p zvol=<pool/name> -s <size>.
func (m *Manager) CreateZvolLU(ctx context.Context, req api.CreateZvolLURequest) (api.LU, error) {
	zp, err := m.zvols()
	if err != nil {
		return api.LU{}, err
	}
	path, err := zp.ZvolPath(req.Zvol)
	if err != nil {
		return api.LU{}, api.Errorf(api.CodeInvalidProp, "zvol", "%v", err)
	}
	if err := req.Props.Validate(false); err != nil {
		return api.LU{}, propErr(err)
	}
	if req.Props.MetaFile != "" {
		return api.LU{}, api.Errorf(api.CodeMetaFile, req.Props.MetaFile, "meta file error: a zvol LU keeps its metadata in the zvol")
	}
	if req.Props.Preallocation != "" && req.Props.Preallocation != api.PreallocOff {
		return api.LU{}, api.Errorf(api.CodeInvalidProp, "preallocation", "bad format: a zvol's space belongs to its pool (zfs set refreservation)")
	}
	if req.VolBlockSize != 0 && !api.ValidVolBlockSize(req.VolBlockSize) {
		return api.LU{}, api.Errorf(api.CodeInvalidBlockSize, "blk", "invalid volblocksize %d", req.VolBlockSize)
	}
	spec, err := specFromProps(path, req.Size, req.Props)
	if err != nil {
		return api.LU{}, err
	}
	blk := max(spec.BlockSize, api.MinBlockSize)
	switch {
	case req.Size == 0:
		return api.LU{}, api.Errorf(api.CodeInvalidSize, req.Zvol, "invalid size: a new zvol needs a size (-s)")
	case req.Size%uint64(blk) != 0:
		return api.LU{}, api.Errorf(api.CodeInvalidSize, req.Zvol, "invalid size: %d is not a multiple of the block size %d", req.Size, blk)
	case req.VolBlockSize != 0 && req.Size%uint64(req.VolBlockSize) != 0:
		return api.LU{}, api.Errorf(api.CodeInvalidSize, req.Zvol, "invalid size: %d is not a multiple of the volblocksize %d", req.Size, req.VolBlockSize)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fileInUseLocked(path) {
		return api.LU{}, api.Errorf(api.CodeFileInUse, path, "in use")
	}
	if !spec.GUID.IsZero() && findLU(m.state, spec.GUID) >= 0 {
		return api.LU{}, api.Errorf(api.CodeGUIDInUse, spec.GUID.String(), "guid in use")
	}
	unit, err := zp.CreateZvolLU(ctx, req.Zvol, req.Size, req.VolBlockSize, spec)
	if err != nil {
		return api.LU{}, zfsErr(err, req.Zvol)
	}
	lu, err := m.adoptLocked(ctx, unit, "created on a new zvol", true, req.Props)
	if err != nil {
		m.destroyAfterFailure(ctx, zp, req.Zvol)
		return api.LU{}, err
	}
	return lu, nil
}

// destroyAfterFailure destroys a volume made for a request that failed.
func (m *Manager) destroyAfterFailure(ctx context.Context, zp ZvolProvider, name string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := zp.DestroyZvol(dctx, name); err != nil {
		m.log.Error("cannot destroy the zvol made for a failed request; destroy it by hand", "zvol", name, "err", err)
	}
}

// ImportZvolLU is import-lu with -p guid= / alias=.
func (m *Manager) ImportZvolLU(ctx context.Context, req api.ImportZvolLURequest) (api.LU, error) {
	zp, err := m.zvols()
	if err != nil {
		return api.LU{}, err
	}
	path, err := cleanAbs(req.File, "file")
	if err != nil {
		return api.LU{}, err
	}
	if _, ok := zp.ZvolName(path); !ok {
		return api.LU{}, api.Errorf(api.CodeInvalidArgument, path, "-p guid= and alias= apply to zvols (/dev/zvol/<pool>/<volume>)")
	}
	var g stmf.GUID
	if req.GUID != "" {
		if g, err = stmf.ParseGUID(req.GUID); err != nil || g.IsZero() {
			return api.LU{}, api.Errorf(api.CodeInvalidProp, "guid", "bad format")
		}
	}
	if req.Alias != nil && len(*req.Alias) > api.MaxAliasLen {
		return api.LU{}, api.Errorf(api.CodeInvalidPropLen, "alias", "invalid length")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fileInUseLocked(path) {
		return api.LU{}, api.Errorf(api.CodeFileInUse, path, "in use")
	}
	if !g.IsZero() && findLU(m.state, g) >= 0 {
		return api.LU{}, api.Errorf(api.CodeGUIDInUse, g.String(), "guid in use")
	}
	unit, err := zp.ImportZvolLU(ctx, path, g, req.Alias)
	if err != nil {
		return api.LU{}, zfsErr(err, path)
	}
	return m.adoptLocked(ctx, unit, "imported", false, api.LUProps{})
}

// zvolOfLocked returns the volume of configured LU i.
func (m *Manager) zvolOfLocked(zp ZvolProvider, i int) (string, error) {
	rec := m.state.LUs[i]
	name, ok := zp.ZvolName(rec.DataFile)
	if !ok || rec.MetaFile != "" {
		return "", api.Errorf(api.CodeNotSupported, rec.GUID, "LU %s is not on a zvol (data file %s)", rec.GUID, rec.DataFile)
	}
	return name, nil
}

// SnapshotLU is snapshot-lu.
func (m *Manager) SnapshotLU(ctx context.Context, req api.SnapshotLURequest) (api.Snapshot, error) {
	zp, err := m.zvols()
	if err != nil {
		return api.Snapshot{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g, i, err := m.luIndexLocked(req.GUID)
	if err != nil {
		return api.Snapshot{}, err
	}
	if _, err := m.zvolOfLocked(zp, i); err != nil {
		return api.Snapshot{}, err
	}
	unit, ok := m.open[g]
	if !ok {
		return api.Snapshot{}, api.Errorf(api.CodeDataFile, m.state.LUs[i].DataFile, "data file error: the zvol is not open (%s)", m.waitReasonLocked(g))
	}
	name, err := zp.SnapshotLU(ctx, unit, req.Name)
	if err != nil {
		return api.Snapshot{}, zfsErr(err, req.GUID)
	}
	m.log.Info("LU snapshot taken", "guid", g, "snapshot", name)
	return api.Snapshot{GUID: g.String(), Name: name}, nil
}

// CloneLU is clone-lu.
func (m *Manager) CloneLU(ctx context.Context, req api.CloneLURequest) (api.LU, error) {
	zp, err := m.zvols()
	if err != nil {
		return api.LU{}, err
	}
	guid, vol, snap, err := api.SplitCloneSource(req.Source)
	if err != nil {
		return api.LU{}, api.Errorf(api.CodeInvalidArgument, req.Source, "%v", err)
	}
	if err := req.Props.Validate(false); err != nil {
		return api.LU{}, propErr(err)
	}
	if req.Props.BlockSize != nil || req.Props.MetaFile != "" || req.Props.Thin != nil || req.Props.SoftThreshold != nil || req.Props.Preallocation != "" {
		return api.LU{}, api.Errorf(api.CodeInvalidProp, "", "clone-lu takes alias, guid, mgmt-url, pid, serial, vid, wcd, wp and zvol")
	}
	if req.Zvol != "" {
		if _, err := zp.ZvolPath(req.Zvol); err != nil {
			return api.LU{}, api.Errorf(api.CodeInvalidProp, "zvol", "%v", err)
		}
	}
	spec, err := specFromProps("", 0, req.Props)
	if err != nil {
		return api.LU{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if guid != "" {
		_, i, err := m.luIndexLocked(guid)
		if err != nil {
			return api.LU{}, err
		}
		if vol, err = m.zvolOfLocked(zp, i); err != nil {
			return api.LU{}, err
		}
	}
	if !spec.GUID.IsZero() && findLU(m.state, spec.GUID) >= 0 {
		return api.LU{}, api.Errorf(api.CodeGUIDInUse, spec.GUID.String(), "guid in use")
	}
	unit, err := zp.CloneLU(ctx, vol+"@"+snap, req.Zvol, spec)
	if err != nil {
		return api.LU{}, zfsErr(err, req.Source)
	}
	clone, _ := zp.ZvolName(unit.Info().DataFile)
	lu, err := m.adoptLocked(ctx, unit, "created on a clone of "+vol+"@"+snap, true, req.Props)
	if err != nil {
		if clone != "" {
			m.destroyAfterFailure(ctx, zp, clone)
		}
		return api.LU{}, err
	}
	return lu, nil
}

// DestroyLU is delete-lu --destroy-zvol: the LU is closed and its volume
// destroyed, then the LU is forgotten (with its views unless KeepViews).
// When ZFS refuses (snapshots, clones, a busy device) the LU is opened
// again and stays as it was.
func (m *Manager) DestroyLU(ctx context.Context, req api.DestroyLURequest) (api.Empty, error) {
	zp, err := m.zvols()
	if err != nil {
		return api.Empty{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g, i, err := m.luIndexLocked(req.GUID)
	if err != nil {
		return api.Empty{}, err
	}
	rec := m.state.LUs[i]
	name, err := m.zvolOfLocked(zp, i)
	if err != nil {
		return api.Empty{}, err
	}
	unit := m.open[g]
	registered := unit != nil && !rec.Offline
	if registered {
		_ = m.fw.DeregisterLU(g, true)
	}
	if unit != nil {
		delete(m.open, g)
		m.closeLU(unit)
	}
	if err := zp.DestroyZvol(ctx, name); err != nil {
		// Bring the LU back as it was.
		if unit != nil {
			d, rerr := zp.ReopenLU(context.WithoutCancel(ctx), rec.DataFile, rec.MetaFile, g)
			switch {
			case rerr != nil:
				m.log.Error("cannot reopen the LU after a failed zvol destroy", "guid", g, "err", rerr)
				m.setWaitingLocked(g, rerr)
			case registered && m.fw.RegisterLU(d) != nil:
				m.log.Error("cannot register the LU again after a failed zvol destroy", "guid", g)
				m.open[g] = d
			default:
				m.open[g] = d
			}
		}
		return api.Empty{}, zfsErr(err, name)
	}
	next := m.state.Clone()
	next.LUs = slices.Delete(next.LUs, i, i+1)
	views := viewsOf(m.state, g)
	if !req.KeepViews {
		s := g.String()
		next.Views = slices.DeleteFunc(next.Views, func(v store.View) bool { return v.GUID == s })
		for _, v := range views {
			_ = m.fw.RemoveView(g, viewEntry(v))
		}
	}
	delete(m.waiting, g)
	if err := m.commitLocked(next, nil); err != nil {
		m.log.Error("zvol destroyed but the configuration was not saved; the LU stays configured, offline", "guid", g, "zvol", name)
		return api.Empty{}, err
	}
	m.forgetQoSLocked(g)
	m.log.Info("LU deleted and its zvol destroyed", "guid", g, "zvol", name, "keep_views", req.KeepViews)
	return api.Empty{}, nil
}

// reopen opens configured LU rec (GUID g) again: through ReopenLU when the
// provider has it (it never rewrites what the store holds), else Import.
func (m *Manager) reopen(ctx context.Context, rec store.LU, g stmf.GUID) (LU, error) {
	if zp, ok := m.lus.(ZvolProvider); ok {
		return zp.ReopenLU(ctx, rec.DataFile, rec.MetaFile, g)
	}
	return m.lus.Import(ctx, rec.DataFile, rec.MetaFile)
}

// setWaitingLocked records why LU g is not open.
func (m *Manager) setWaitingLocked(g stmf.GUID, err error) {
	if m.waiting == nil {
		m.waiting = map[stmf.GUID]*waitState{}
	}
	reason := err.Error()
	if w := m.waiting[g]; w != nil && w.reason == reason {
		return
	}
	m.waiting[g] = &waitState{reason: reason}
}

func (m *Manager) waitReasonLocked(g stmf.GUID) string {
	if w := m.waiting[g]; w != nil {
		return w.reason
	}
	return "backing store not open"
}

// statusDetailLocked is list-lu's explanation for an LU that is not open.
func (m *Manager) statusDetailLocked(rec store.LU, g stmf.GUID) string {
	w := m.waiting[g]
	if w == nil {
		return ""
	}
	if zp, ok := m.lus.(ZvolProvider); ok {
		if name, ok := zp.ZvolName(rec.DataFile); ok {
			return fmt.Sprintf("waiting for zvol %s (pool not imported?): %s", name, w.reason)
		}
	}
	return "backing store not available: " + w.reason
}

// WatchZvols starts retrying, every interval, the configured LUs on zvols
// that are not open (their pool was imported after stmfd started, or
// udev had not made the device yet); an LU whose zvol appears is opened
// and, unless offline, registered, without a restart. stop ends the loop
// and waits for it.
func (m *Manager) WatchZvols(interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.retryZvols(ctx, interval)
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// retryZvols is one round of WatchZvols. The slow part (zfs commands,
// opening devices) runs without the manager lock.
func (m *Manager) retryZvols(ctx context.Context, budget time.Duration) {
	zp, ok := m.lus.(ZvolProvider)
	if !ok {
		return
	}
	type cand struct {
		rec store.LU
		g   stmf.GUID
	}
	var todo []cand
	m.mu.Lock()
	for _, rec := range m.state.LUs {
		g, err := stmf.ParseGUID(rec.GUID)
		if err != nil || m.open[g] != nil || m.parked[g] {
			continue
		}
		if _, ok := zp.ZvolName(rec.DataFile); ok && rec.MetaFile == "" {
			todo = append(todo, cand{rec, g})
		}
	}
	m.mu.Unlock()
	for _, c := range todo {
		if ctx.Err() != nil {
			return
		}
		_ = m.openWaitingZvol(ctx, zp, c.rec, c.g, budget)
	}
}

// zvolRetryBudget bounds one attempt to open a waiting LU's zvol.
const zvolRetryBudget = 10 * time.Second

// openWaitingZvol tries to open configured LU rec (GUID g), which waits
// for its zvol, and registers it unless it is offline. The slow part runs
// without the manager lock. The error says why it still waits.
func (m *Manager) openWaitingZvol(ctx context.Context, zp ZvolProvider, rec store.LU, g stmf.GUID, budget time.Duration) error {
	octx, cancel := context.WithTimeout(ctx, max(budget, zvolRetryBudget))
	d, err := zp.ReopenLU(octx, rec.DataFile, rec.MetaFile, g)
	cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findLU(m.state, g)
	switch {
	case i < 0 || m.open[g] != nil || m.state.LUs[i].DataFile != rec.DataFile || m.parked[g]:
		// Deleted, opened, changed or parked meanwhile.
		if d != nil {
			m.closeLU(d)
		}
		return nil
	case err != nil:
		m.setWaitingLocked(g, err)
		if w := m.waiting[g]; time.Since(w.logged) > zvolWaitLog {
			w.logged = time.Now()
			m.log.Info("LU still waiting for its zvol", "guid", g, "data_file", rec.DataFile, "reason", err)
		}
		return err
	}
	cur := m.state.LUs[i]
	if !cur.Offline {
		if rerr := m.fw.RegisterLU(d); rerr != nil {
			m.log.Error("zvol appeared but the LU cannot be registered", "guid", g, "err", rerr)
			m.closeLU(d)
			return fmt.Errorf("registering LU %s: %w", g, rerr)
		}
	}
	m.open[g] = d
	delete(m.waiting, g)
	m.log.Info("zvol appeared; LU opened", "guid", g, "data_file", cur.DataFile, "online", !cur.Offline)
	return nil
}

// sameZvol reports whether two paths name the same zvol (the illumos
// spellings /dev/zvol/rdsk/<pool>/<vol> and /dev/zvol/dsk/... name the
// volume /dev/zvol/<pool>/<vol> does).
func (m *Manager) sameZvol(a, b string) bool {
	zp, ok := m.lus.(ZvolProvider)
	if !ok {
		return false
	}
	na, oka := zp.ZvolName(a)
	nb, okb := zp.ZvolName(b)
	return oka && okb && na == nb
}
