package lu

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/costar-project/costar/lu/backing/fdstore"
	"github.com/costar-project/costar/lu/backing/filestore"
	"github.com/costar-project/costar/lu/backing/memstore"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// fakeTransport is a stmf.Transport that hands out a fixed Data-Out buffer
// and records what the LU delivers.
type fakeTransport struct {
	data    []byte
	dataErr error
	block   chan struct{} // if set, ReceiveData waits for it (or ctx)

	mu       sync.Mutex
	results  []*stmf.Result
	drops    int
	received int // ReceiveData calls
}

func (f *fakeTransport) ReceiveData(ctx context.Context) ([]byte, error) {
	f.mu.Lock()
	f.received++
	f.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f.data, f.dataErr
}

func (f *fakeTransport) Deliver(r *stmf.Result) {
	f.mu.Lock()
	f.results = append(f.results, r)
	f.mu.Unlock()
}

func (f *fakeTransport) Drop() {
	f.mu.Lock()
	f.drops++
	f.mu.Unlock()
}

// completions is the number of Deliver plus Drop calls.
func (f *fakeTransport) completions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.results) + f.drops
}

// req describes one command sent to a Device in a test.
type req struct {
	cdb     []byte
	dir     scsi.DataDir
	expLen  uint32 // 0 with dir read: derived from the CDB is not done; set it
	data    []byte // Data-Out
	session *stmf.Session
}

// resp is the outcome of a command, with its data copied (and the buffer
// released, as a transport would).
type resp struct {
	status      scsi.Status
	sense       *scsi.Sense
	rawSense    []byte
	data        []byte
	transferLen uint32
	received    int // how many times the LU pulled Data-Out
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// exec runs one command synchronously and checks that it completed
// exactly once.
func exec(t testing.TB, d *Device, r req) resp {
	t.Helper()
	tr := &fakeTransport{data: r.data}
	task := stmf.NewTask(tr)
	task.CDB = r.cdb
	task.Dir = r.dir
	task.ExpectedLen = r.expLen
	task.Session = r.session
	d.Execute(task)
	if n := tr.completions(); n != 1 {
		t.Fatalf("cdb % x: %d completions, want exactly 1", r.cdb, n)
	}
	if len(tr.results) != 1 {
		t.Fatalf("cdb % x: task dropped", r.cdb)
	}
	res := tr.results[0]
	out := resp{status: res.Status, transferLen: res.TransferLen, rawSense: res.Sense, received: tr.received}
	if res.Data != nil {
		out.data = append([]byte{}, res.Data...)
	}
	if res.Release != nil {
		res.Release()
	}
	if res.Status == scsi.StatusCheckCondition {
		s, err := scsi.ParseSense(res.Sense)
		if err != nil {
			t.Fatalf("cdb % x: bad sense % x: %v", r.cdb, res.Sense, err)
		}
		out.sense = s
	}
	return out
}

// diskOpts tweak newTestDisk.
type diskOpts struct {
	size      uint64
	blockSize uint32
	metaFile  bool
	wcd, wp   bool
}

func newTestDisk(t testing.TB, o diskOpts) *Device {
	t.Helper()
	if o.size == 0 {
		o.size = 1 << 20
	}
	dir := t.TempDir()
	cfg := fileConfig{
		DataFile:           filepath.Join(dir, "lu.img"),
		Size:               o.size,
		BlockSize:          o.blockSize,
		WriteCacheDisabled: o.wcd,
		WriteProtect:       o.wp,
	}
	if o.metaFile {
		cfg.MetaFile = filepath.Join(dir, "lu.meta")
	}
	d, err := createFile(context.Background(), cfg, &GUIDGenerator{HostID: HostIDFrom32(0x12345678)}, quietLog())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// syncCounter counts backend sync operations by kind.
type syncCounter struct {
	fdatasync, dsyncWrites atomic.Int64
}

func (c *syncCounter) install(d *Device) {
	fileStore(d).SetSyncHook(func(kind string) {
		switch kind {
		case fdstore.SyncFdatasync:
			c.fdatasync.Add(1)
		case fdstore.SyncDsyncWrite:
			c.dsyncWrites.Add(1)
		}
	})
}

// CDB builders.

func cdb6(op byte, lba uint32, n byte) []byte {
	return []byte{op, byte(lba>>16) & 0x1f, byte(lba >> 8), byte(lba), n, 0}
}

func cdb10(op, b1 byte, lba uint32, n uint16) []byte {
	c := make([]byte, 10)
	c[0], c[1] = op, b1
	binary.BigEndian.PutUint32(c[2:6], lba)
	binary.BigEndian.PutUint16(c[7:9], n)
	return c
}

func cdb12(op, b1 byte, lba uint32, n uint32) []byte {
	c := make([]byte, 12)
	c[0], c[1] = op, b1
	binary.BigEndian.PutUint32(c[2:6], lba)
	binary.BigEndian.PutUint32(c[6:10], n)
	return c
}

func cdb16(op, b1 byte, lba uint64, n uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = op, b1
	binary.BigEndian.PutUint64(c[2:10], lba)
	binary.BigEndian.PutUint32(c[10:14], n)
	return c
}

func inquiryCDB(evpd bool, page byte, alloc uint16) []byte {
	c := []byte{scsi.OpInquiry, 0, page, 0, 0, 0}
	if evpd {
		c[1] = 1
	}
	binary.BigEndian.PutUint16(c[3:5], alloc)
	return c
}

func rsocCDB(rctd bool, opts, op byte, sa uint16, alloc uint32) []byte {
	c := make([]byte, 12)
	c[0], c[1], c[2], c[3] = scsi.OpMaintenanceIn, scsi.SAReportSupportedOps, opts, op
	if rctd {
		c[2] |= 0x80
	}
	binary.BigEndian.PutUint16(c[4:6], sa)
	binary.BigEndian.PutUint32(c[6:10], alloc)
	return c
}

func rc16CDB(alloc uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = scsi.OpServiceActionIn, scsi.SAReadCapacity16
	binary.BigEndian.PutUint32(c[10:14], alloc)
	return c
}

func modeSense6CDB(dbd bool, pc, page, sub, alloc byte) []byte {
	c := []byte{scsi.OpModeSense6, 0, pc<<6 | page, sub, alloc, 0}
	if dbd {
		c[1] = 0x08
	}
	return c
}

func modeSense10CDB(llbaa, dbd bool, pc, page, sub byte, alloc uint16) []byte {
	c := make([]byte, 10)
	c[0], c[2], c[3] = scsi.OpModeSense10, pc<<6|page, sub
	if llbaa {
		c[1] |= 0x10
	}
	if dbd {
		c[1] |= 0x08
	}
	binary.BigEndian.PutUint16(c[7:9], alloc)
	return c
}

// expectSense asserts a CHECK CONDITION with the given key and ASC.
func expectSense(t testing.TB, name string, r resp, key scsi.SenseKey, asc scsi.ASC) {
	t.Helper()
	if r.status != scsi.StatusCheckCondition || r.sense == nil {
		t.Fatalf("%s: status %v, want CHECK CONDITION %x/%04x", name, r.status, key, asc)
	}
	if r.sense.Key != key || r.sense.ASC != asc {
		t.Fatalf("%s: sense %x/%04x, want %x/%04x", name, r.sense.Key, r.sense.ASC, key, asc)
	}
	// TransferLen only where the residual must be reported (iuLengthMismatch).
	if len(r.data) != 0 || r.transferLen != 0 && asc != scsi.ASCInvalidFieldInCmdInfoUnit {
		t.Fatalf("%s: CHECK CONDITION with TransferLen %d and %d data bytes", name, r.transferLen, len(r.data))
	}
}

func expectGood(t testing.TB, name string, r resp) {
	t.Helper()
	if r.status != scsi.StatusGood {
		if r.sense != nil {
			t.Fatalf("%s: status %v sense %x/%04x, want GOOD", name, r.status, r.sense.Key, r.sense.ASC)
		}
		t.Fatalf("%s: status %v, want GOOD", name, r.status)
	}
}

// fileConfig is a test LU on a file: the file store's options and the
// LU's configuration in one.
type fileConfig struct {
	DataFile, MetaFile string
	NoAtomicWrites     bool

	Size      uint64
	BlockSize uint32
	GUID      stmf.GUID
	VendorID  string
	ProductID string
	Serial    string
	Alias     string
	MgmtURL   string

	WriteCacheDisabled bool
	WriteProtect       bool
	Thin               bool
	SoftThreshold      uint8
}

// createFile makes an LU on a file store, as the daemon does.
func createFile(ctx context.Context, fc fileConfig, gen *GUIDGenerator, log *slog.Logger) (*Device, error) {
	cfg := Config{Size: fc.Size, BlockSize: fc.BlockSize, GUID: fc.GUID, VendorID: fc.VendorID, ProductID: fc.ProductID,
		Serial: fc.Serial, Alias: fc.Alias, MgmtURL: fc.MgmtURL, WriteCacheDisabled: fc.WriteCacheDisabled,
		WriteProtect: fc.WriteProtect, Thin: fc.Thin, SoftThreshold: fc.SoftThreshold}
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	st, err := filestore.Create(ctx, filestore.Options{DataFile: fc.DataFile, MetaFile: fc.MetaFile, Size: fc.Size,
		BlockSize: cfg.BlockSize, NoAtomicWrites: fc.NoAtomicWrites, Log: log})
	if err != nil {
		return nil, err
	}
	d, err := New(ctx, st, cfg, gen, log)
	if err != nil {
		st.Discard()
		return nil, err
	}
	return d, nil
}

// importFile opens the LU of a file store.
func importFile(ctx context.Context, dataFile, metaFile string, log *slog.Logger) (*Device, error) {
	st, err := filestore.Open(ctx, dataFile, metaFile, log)
	if err != nil {
		return nil, err
	}
	d, err := Open(ctx, st, OpenOptions{Log: log})
	if err != nil {
		st.Close()
		return nil, err
	}
	return d, nil
}

// fileStore returns the LU's file store.
func fileStore(d *Device) *filestore.Store { return d.store.(*filestore.Store) }

// journalBytes is what the file store's atomic write journal holds.
const journalBytes = 1 << 20

// newMemDisk makes an LU on an in-memory store.
func newMemDisk(t testing.TB, st *memstore.Store, cfg Config) *Device {
	t.Helper()
	d, err := New(context.Background(), st, cfg, &GUIDGenerator{HostID: HostIDFrom32(0x12345678)}, quietLog())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
