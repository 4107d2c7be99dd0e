package mgmt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// memStore is a Store in memory that can be told to fail, or to hold
// every save until released (a slow etcd).
type memStore struct {
	mu      sync.Mutex
	saved   *store.State
	saves   int
	fail    bool
	hold    chan struct{} // non-nil: Save signals entered, then waits for hold to close
	entered chan struct{}
}

func (s *memStore) Save(st *store.State) error {
	s.mu.Lock()
	hold, entered := s.hold, s.entered
	s.mu.Unlock()
	if hold != nil {
		entered <- struct{}{}
		<-hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("disk full")
	}
	s.saves++
	s.saved = st.Clone()
	return nil
}

// holdSaves makes every Save from now on wait until hold is closed.
func (s *memStore) holdSaves(hold, entered chan struct{}) {
	s.mu.Lock()
	s.hold, s.entered = hold, entered
	s.mu.Unlock()
}

func (s *memStore) setFail(f bool) {
	s.mu.Lock()
	s.fail = f
	s.mu.Unlock()
}

// fakeLU is an LU that completes every task with GOOD. It records the
// port access state stmf stamped on the last task (the device server
// answers by it; a fake has nothing to answer with).
type fakeLU struct {
	mu         sync.Mutex
	info       LUInfo
	closed     bool
	lastAccess stmf.ALUAState
}

func (d *fakeLU) GUID() stmf.GUID { return d.info.GUID }

// Admit classes reads and flushes as lu's command table does (stats_test.go).
func (d *fakeLU) Admit(t *stmf.Task) {
	switch t.CDB[0] {
	case scsi.OpRead10:
		t.SetKind(stmf.KindRead)
	case scsi.OpSyncCache10:
		t.SetKind(stmf.KindFlush)
	}
}
func (d *fakeLU) Execute(t *stmf.Task) {
	d.mu.Lock()
	d.lastAccess = t.Access
	d.mu.Unlock()
	t.CompleteData(nil, nil)
}

func (d *fakeLU) accessSeen() stmf.ALUAState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastAccess
}
func (d *fakeLU) Info() LUInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.info
}

// ClearError implements ErrorClearer (the fake's failure is info.ErrorState).
func (d *fakeLU) ClearError() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	had := d.info.ErrorState != ""
	d.info.ErrorState = ""
	return had
}

func (d *fakeLU) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}
func (d *fakeLU) Resize(_ context.Context, size uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if size < d.info.Size {
		return fmt.Errorf("shrinking: %w", ErrSizeRange)
	}
	d.info.Size = size
	return nil
}
func (d *fakeLU) SetProps(_ context.Context, c LUChange) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.Alias != nil {
		d.info.Alias = *c.Alias
	}
	if c.MgmtURL != nil {
		d.info.MgmtURL = *c.MgmtURL
	}
	if c.WCD != nil {
		d.info.WCD = *c.WCD
	}
	if c.WP != nil {
		d.info.WP = *c.WP
	}
	return nil
}

// fakeLUs keeps "backing stores" by path: what Create wrote is what
// Import reads back, as with metadata stored with the data.
type fakeLUs struct {
	mu      sync.Mutex
	files   map[string]LUInfo
	open    map[string]*fakeLU
	counter uint16
	failOn  map[string]error
}

func newFakeLUs() *fakeLUs {
	return &fakeLUs{files: map[string]LUInfo{}, open: map[string]*fakeLU{}, failOn: map[string]error{}}
}

func (p *fakeLUs) Create(_ context.Context, s LUSpec) (LU, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.failOn[s.DataFile]; err != nil {
		return nil, err
	}
	g := s.GUID
	if g.IsZero() {
		p.counter++
		g = stmf.GUID{0x60, 0x01, 0x44, 0xf0, 1, 2, 3, 4}
		binary.BigEndian.PutUint16(g[14:], p.counter)
	}
	size := s.Size
	if size == 0 {
		size = 1 << 20
	}
	blk := s.BlockSize
	if blk == 0 {
		blk = 512
	}
	vid := s.VID
	if vid == "" {
		vid = "COSTAR"
	}
	in := LUInfo{GUID: g, DataFile: s.DataFile, MetaFile: s.MetaFile, Size: size, BlockSize: blk, Alias: s.Alias,
		MgmtURL: s.MgmtURL, VID: vid, PID: "COMSTAR", Serial: s.Serial, WCD: s.WCD, WP: s.WP}
	p.files[s.DataFile] = in
	d := &fakeLU{info: in}
	p.open[s.DataFile] = d
	return d, nil
}

func (p *fakeLUs) Import(_ context.Context, file, _ string) (LU, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.failOn[file]; err != nil {
		return nil, err
	}
	in, ok := p.files[file]
	if !ok {
		return nil, fmt.Errorf("%s: %w", file, ErrNotAnLU)
	}
	d := &fakeLU{info: in}
	p.open[file] = d
	return d, nil
}

// fakePorts is a port provider that records which targets are served.
type fakePorts struct {
	mu       sync.Mutex
	served   map[string]TargetSpec
	updates  int
	sessions []SessionInfo
}

func newFakePorts() *fakePorts { return &fakePorts{served: map[string]TargetSpec{}} }

func (f *fakePorts) AddTarget(_ context.Context, s TargetSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.served[s.Name]; ok {
		return fmt.Errorf("target %s already served", s.Name)
	}
	f.served[s.Name] = s
	return nil
}

func (f *fakePorts) RemoveTarget(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.served, name)
	return nil
}

func (f *fakePorts) UpdateTarget(_ context.Context, s TargetSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served[s.Name] = s
	f.updates++
	return nil
}

func (f *fakePorts) Sessions() []SessionInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]SessionInfo(nil), f.sessions...)
}

func (f *fakePorts) spec(name string) (TargetSpec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.served[name]
	return s, ok
}

type rig struct {
	m     *Manager
	fw    *stmf.Framework
	st    *memStore
	lus   *fakeLUs
	ports *fakePorts // protocol iscsi
	fc    *fakePorts // protocol fc: a second provider, as the FC one will be
}

// fcTarget is a Fibre Channel target name (a port's WWN).
const fcTarget = "wwn.2100001B32A1B2C3"

// newManager builds a manager on r's framework, store and LU provider with
// both port providers registered.
func (r *rig) newManager() *Manager {
	return New(Config{Log: quietLog(), Framework: r.fw, Store: r.st, LUs: r.lus,
		Ports: map[string]Ports{
			store.ProtocolISCSI: {Provider: r.ports, ProviderName: "iscsit", ProtocolName: "iSCSI"},
			"fc":                {Provider: r.fc, ProviderName: "qlt", ProtocolName: "Fibre Channel"},
		},
		ISCSIPortals: func() []string { return []string{"127.0.0.1:3260"} },
	})
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{fw: stmf.New(quietLog()), st: &memStore{}, lus: newFakeLUs(), ports: newFakePorts(), fc: newFakePorts()}
	r.m = r.newManager()
	return r
}

// restart builds a new manager from what was saved, on the same backing
// stores, with fresh port providers.
func (r *rig) restart(t *testing.T) *rig {
	t.Helper()
	n := &rig{fw: stmf.New(quietLog()), st: &memStore{}, lus: r.lus, ports: newFakePorts(), fc: newFakePorts()}
	n.m = n.newManager()
	saved := r.st.saved
	if saved == nil {
		saved = &store.State{Version: store.Version}
	}
	if err := n.m.Restore(context.Background(), saved.Clone()); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantCode(t *testing.T, err error, code api.Code) {
	t.Helper()
	if api.CodeOf(err) != code {
		t.Fatalf("got error %v, want code %s", err, code)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ptr[T any](v T) *T { return &v }
