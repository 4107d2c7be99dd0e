package lu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/filestore"
	"github.com/costar-project/costar/lu/backing/zvolstore"
	"github.com/costar-project/costar/lu/zvol"
	"github.com/costar-project/costar/lu/zvol/zvoltest"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// createZvol and importZvol wire a zvol store to the device server as
// the daemon does (internal/daemon/stores.go).
func createZvol(ctx context.Context, z zvol.ZFS, name string, cfg Config, gen *GUIDGenerator, log *slog.Logger) (*Device, error) {
	if cfg.SoftThreshold != 0 {
		return nil, errors.New("a soft threshold applies to LUs on files")
	}
	cfg.Thin = true
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	st, err := zvolstore.Create(ctx, z, name, cfg.Size, cfg.BlockSize, log)
	if err != nil {
		return nil, err
	}
	cfg.Size = 0
	d, err := New(ctx, st, cfg, gen, log)
	if err != nil {
		st.Discard(ctx)
		return nil, err
	}
	return d, nil
}

func importZvol(ctx context.Context, z zvol.ZFS, name string, o OpenOptions, gen *GUIDGenerator, log *slog.Logger) (*Device, error) {
	st, err := zvolstore.Open(ctx, z, name, log)
	if errors.Is(err, zvol.ErrNoMetadata) {
		fs, ferr := filestore.Open(ctx, z.Device(name), "", log)
		if ferr != nil {
			if errors.Is(ferr, backing.ErrNoMeta) {
				return nil, err
			}
			return nil, ferr
		}
		d, ferr := Open(ctx, fs, OpenOptions{Log: log, Expect: o.Expect})
		if ferr != nil {
			fs.Close()
			return nil, ferr
		}
		return d, nil
	}
	if err != nil {
		return nil, err
	}
	o.Log, o.Gen, o.Save = log, gen, true
	o.Copy = st.Found().Relation == zvol.Copy
	d, err := Open(ctx, st, o)
	if err != nil {
		st.Close()
		return nil, err
	}
	return d, nil
}

func testGen() *GUIDGenerator { return &GUIDGenerator{HostID: HostIDFrom32(0x0a0b0c0d)} }

// newZvolLU makes volume name (size bytes, volblocksize vb) on f and an LU on it.
func newZvolLU(t *testing.T, f *zvoltest.Fake, gen *GUIDGenerator, name string, size, vb uint64, cfg Config) *Device {
	t.Helper()
	ctx := context.Background()
	if err := f.CreateVolume(ctx, name, size, vb, nil); err != nil {
		t.Fatal(err)
	}
	d, err := createZvol(ctx, f, name, cfg, gen, quietLog())
	if err != nil {
		t.Fatalf("CreateZvol: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func storedMeta(t *testing.T, f *zvoltest.Fake, name string) *zvol.Meta {
	t.Helper()
	s, ok := f.Props(name)[zvol.PropLU]
	if !ok {
		t.Fatalf("%s has no %s", name, zvol.PropLU)
	}
	m, err := zvol.DecodeMeta(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeBlock(t *testing.T, d *Device, lba uint32, fill byte) {
	t.Helper()
	b := bytes.Repeat([]byte{fill}, int(d.bs))
	expectGood(t, "write", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, lba, 1), dir: scsi.DirWrite, expLen: d.bs, data: b}))
}

func readBlock(t *testing.T, d *Device, lba uint32) []byte {
	t.Helper()
	r := exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, lba, 1), dir: scsi.DirRead, expLen: d.bs})
	expectGood(t, "read", r)
	return r.data
}

func TestZvolCreateAndImport(t *testing.T) {
	ctx := context.Background()
	f := zvoltest.New(t.TempDir())
	gen := testGen()
	d := newZvolLU(t, f, gen, "tank/v", 4<<20, 16384, Config{Alias: "db", Serial: "S1", WriteCacheDisabled: true})
	in := d.Info()
	if in.Size != 4<<20 || in.DataFile != f.Device("tank/v") || in.MetaFile != "" || in.Zvol != "tank/v" || !in.Thin || !in.WriteCacheDisabled {
		t.Fatalf("Info = %+v", in)
	}
	m := storedMeta(t, f, "tank/v")
	v, _ := f.Volume(ctx, "tank/v")
	if m.GUID != d.GUID() || m.Zvol != "tank/v" || m.ZvolGUID != v.GUID || m.Alias != "db" || m.Serial != "S1" || !m.WCD || m.BlockSize != 512 {
		t.Fatalf("stored metadata %+v", m)
	}
	if _, ok := f.Props("tank/v")[zvol.PropPR]; ok {
		t.Error("a new LU without reservations wrote org.costar:pr")
	}
	// Data starts at byte 0 of the zvol: no in-band header.
	writeBlock(t, d, 0, 0xab)
	raw, _ := os.ReadFile(f.Device("tank/v"))
	if raw[0] != 0xab || raw[511] != 0xab {
		t.Fatal("LU block 0 is not byte 0 of the zvol")
	}
	g := d.GUID()
	d.Close()

	d2, err := importZvol(ctx, f, "tank/v", OpenOptions{Expect: g}, gen, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if d2.GUID() != g || d2.Info().Alias != "db" || readBlock(t, d2, 0)[0] != 0xab {
		t.Fatalf("reimported LU differs: %+v", d2.Info())
	}
	calls := len(f.Calls())
	d2.Close()
	if _, err := importZvol(ctx, f, "tank/v", OpenOptions{Expect: stmf.GUID{0x60, 9}}, gen, quietLog()); err == nil {
		t.Fatal("ImportZvol with the wrong expected GUID succeeded")
	}
	for _, c := range f.Calls()[calls:] {
		if strings.HasPrefix(c, "setprop") {
			t.Errorf("an import that expects another GUID wrote %s", c)
		}
	}
}

func TestZvolCreateChecks(t *testing.T) {
	ctx := context.Background()
	f := zvoltest.New(t.TempDir())
	if err := f.CreateVolume(ctx, "tank/v", 1<<20, 8192, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"soft threshold", Config{SoftThreshold: 80}},
		{"smaller than the zvol", Config{Size: 512 << 10}},
		{"not a multiple of volblocksize", Config{Size: 2<<20 + 512}},
		{"bad block size", Config{BlockSize: 1000}},
		{"volsize not a multiple of the block size", Config{BlockSize: 65536, Size: 1<<20 + 8192}},
	} {
		if d, err := createZvol(ctx, f, "tank/v", tc.cfg, nil, quietLog()); err == nil {
			d.Close()
			t.Errorf("%s: CreateZvol succeeded", tc.name)
		}
	}
	if v, _ := f.Volume(ctx, "tank/v"); v.Size != 1<<20 {
		t.Errorf("a failed create left volsize %d", v.Size)
	}
	if _, err := createZvol(ctx, f, "tank/nope", Config{}, nil, quietLog()); !errors.Is(err, zvol.ErrNotFound) {
		t.Errorf("CreateZvol on a missing volume = %v", err)
	}
	// A larger size grows the zvol; a failure afterwards shrinks it back.
	f.FailOn = func(op, name string) error {
		if op == "setprop" {
			return errors.New("cannot set property: pool I/O is currently suspended")
		}
		return nil
	}
	if _, err := createZvol(ctx, f, "tank/v", Config{Size: 2 << 20}, nil, quietLog()); err == nil || !strings.Contains(err.Error(), "suspended") {
		t.Fatalf("CreateZvol with zfs set failing = %v", err)
	}
	if v, _ := f.Volume(ctx, "tank/v"); v.Size != 1<<20 {
		t.Errorf("volsize %d after a failed create that grew it", v.Size)
	}
	f.FailOn = nil
	d, err := createZvol(ctx, f, "tank/v", Config{Size: 2 << 20}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if v, _ := f.Volume(ctx, "tank/v"); v.Size != 2<<20 || d.Info().Size != 2<<20 {
		t.Errorf("create-lu -s larger: volsize %d, LU %d", v.Size, d.Info().Size)
	}
}

func TestZvolCopiesAndRenames(t *testing.T) {
	ctx := context.Background()
	f := zvoltest.New(t.TempDir())
	gen := testGen()
	d := newZvolLU(t, f, gen, "tank/a", 1<<20, 8192, Config{Alias: "orig", Serial: "SER"})
	g := d.GUID()
	writeBlock(t, d, 3, 0x5a)
	if err := f.Snapshot(ctx, "tank/a", "s1", nil); err != nil {
		t.Fatal(err)
	}
	d.Close()

	// Plain zfs clone: a copy (metadata from the origin snapshot).
	if err := f.Clone(ctx, "tank/a@s1", "tank/c", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := importZvol(ctx, f, "tank/c", OpenOptions{Expect: g}, gen, quietLog()); err == nil {
		t.Fatal("reopening a clone as the original succeeded")
	}
	if _, ok := f.Props("tank/c")[zvol.PropLU]; ok {
		t.Fatal("a refused reopen wrote metadata to the clone")
	}
	c, err := importZvol(ctx, f, "tank/c", OpenOptions{}, gen, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if b := readBlock(t, c, 3); b[0] != 0x5a {
		t.Fatalf("clone data % x", b[:8])
	}
	if c.GUID() == g || c.Info().Alias != "orig" || c.Info().Serial != "" {
		t.Fatalf("clone LU: guid %s info %+v", c.GUID(), c.Info())
	}
	if m := storedMeta(t, f, "tank/c"); m.GUID != c.GUID() || m.Zvol != "tank/c" {
		t.Fatalf("clone metadata %+v", m)
	}
	cg := c.GUID()
	c.Close()
	// Its own LU from now on.
	c, err = importZvol(ctx, f, "tank/c", OpenOptions{Expect: cg}, gen, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// zfs send -p | recv under another name: a copy; the GUID given wins.
	if err := f.Receive("tank/a@s1", "tank/r", true); err != nil {
		t.Fatal(err)
	}
	want := stmf.GUID{0x60, 0x01, 0x44, 0xf0, 0xee}
	r, err := importZvol(ctx, f, "tank/r", OpenOptions{GUID: want, Alias: ptrTo("restored")}, gen, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if r.GUID() != want || r.Info().Alias != "restored" {
		t.Fatalf("received copy: %s %+v", r.GUID(), r.Info())
	}
	r.Close()

	// zfs rename: the same LU.
	if err := f.Rename("tank/a", "tank/a2"); err != nil {
		t.Fatal(err)
	}
	a2, err := importZvol(ctx, f, "tank/a2", OpenOptions{Expect: g}, gen, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if m := storedMeta(t, f, "tank/a2"); m.Zvol != "tank/a2" || m.GUID != g {
		t.Fatalf("after rename the metadata says %+v", m)
	}
	a2.Close()

	// Received under the LU's own name (another host): the same LU. The
	// source is moved away first (a rename leaves the properties alone).
	if err := f.Snapshot(ctx, "tank/a2", "s2", nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Rename("tank/a2", "tank/elsewhere"); err != nil {
		t.Fatal(err)
	}
	if err := f.Receive("tank/elsewhere@s2", "tank/a2", true); err != nil {
		t.Fatal(err)
	}
	a, err := importZvol(ctx, f, "tank/a2", OpenOptions{}, gen, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.GUID() != g {
		t.Fatalf("copy received under the LU's own name got %s, want %s", a.GUID(), g)
	}
	if v, _ := f.Volume(ctx, "tank/a2"); storedMeta(t, f, "tank/a2").ZvolGUID != v.GUID {
		t.Error("the received copy's dataset guid was not recorded")
	}
}

func TestZvolNoMetadata(t *testing.T) {
	ctx := context.Background()
	f := zvoltest.New(t.TempDir())
	if err := f.CreateVolume(ctx, "tank/bare", 1<<20, 8192, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := importZvol(ctx, f, "tank/bare", OpenOptions{}, nil, quietLog()); !errors.Is(err, ErrNoMetadata) {
		t.Fatalf("importZvol(bare) = %v, want ErrNoMetadata", err)
	}
	// An LU made before zvol metadata: an in-band header, still imported.
	if err := f.CreateVolume(ctx, "tank/old", 1<<20, 8192, nil); err != nil {
		t.Fatal(err)
	}
	old, err := createFile(ctx, fileConfig{DataFile: f.Device("tank/old")}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	g := old.GUID()
	old.Close()
	d, err := importZvol(ctx, f, "tank/old", OpenOptions{Expect: g}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.GUID() != g || d.Info().Size != 1<<20-headerSize || d.Info().Zvol != "" {
		t.Fatalf("header LU on a zvol: %s %+v", d.GUID(), d.Info())
	}
}

func TestZvolResize(t *testing.T) {
	ctx := context.Background()
	f := zvoltest.New(t.TempDir())
	gen := testGen()
	d := newZvolLU(t, f, gen, "tank/v", 1<<20, 16384, Config{})
	if err := d.ResizeContext(ctx, 3<<20); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Volume(ctx, "tank/v"); v.Size != 3<<20 {
		t.Errorf("volsize %d after resize", v.Size)
	}
	r := exec(t, d, req{cdb: rc16CDB(32), dir: scsi.DirRead, expLen: 32})
	if last := binary.BigEndian.Uint64(r.data[0:8]); last != 3<<20/512-1 {
		t.Errorf("READ CAPACITY (16) last LBA %d", last)
	}
	if err := d.Resize(2 << 20); err == nil {
		t.Error("shrinking a zvol LU succeeded")
	}
	if err := d.Resize(4<<20 + 512); err == nil {
		t.Error("a size not a multiple of the volblocksize was accepted")
	}
	if d.Info().Size != 3<<20 {
		t.Errorf("size %d after refused resizes", d.Info().Size)
	}
}

func TestZvolGeometry(t *testing.T) {
	for _, tc := range []struct {
		bs        uint32
		volBlock  uint64
		exp       byte
		gran      uint16
		unmapGran uint32
	}{
		{512, 16384, 3, 32, 8}, // physical capped at 4 KiB; granularity one volblock
		{512, 4096, 3, 8, 8},
		{512, 8192, 3, 16, 8},
		{512, 512, 0, 1, 8},
		{4096, 16384, 0, 4, 1},
		{4096, 131072, 0, 32, 1},
	} {
		f := zvoltest.New(t.TempDir())
		gen := testGen()
		d := newZvolLU(t, f, gen, "tank/v", 1<<20, tc.volBlock, Config{BlockSize: tc.bs})
		r := exec(t, d, req{cdb: rc16CDB(32), dir: scsi.DirRead, expLen: 32})
		if got := r.data[13] & 0x0f; got != tc.exp {
			t.Errorf("bs %d volblock %d: exponent %d, want %d", tc.bs, tc.volBlock, got, tc.exp)
		}
		if r.data[14]&0x80 == 0 {
			t.Errorf("bs %d volblock %d: LBPME clear", tc.bs, tc.volBlock)
		}
		b := exec(t, d, req{cdb: inquiryCDB(true, vpdBlockLimits, 64), dir: scsi.DirRead, expLen: 64})
		if got := binary.BigEndian.Uint16(b.data[6:8]); got != tc.gran {
			t.Errorf("bs %d volblock %d: granularity %d, want %d", tc.bs, tc.volBlock, got, tc.gran)
		}
	}
}

func TestZvolPropsAndAPTPL(t *testing.T) {
	ctx := context.Background()
	f := zvoltest.New(t.TempDir())
	gen := testGen()
	d := newZvolLU(t, f, gen, "tank/v", 1<<20, 8192, Config{})
	g := d.GUID()
	alias, wcd := "renamed", true
	if err := d.SetProps(Props{Alias: &alias, WriteCacheDisabled: &wcd}); err != nil {
		t.Fatal(err)
	}
	if m := storedMeta(t, f, "tank/v"); m.Alias != "renamed" || !m.WCD {
		t.Fatalf("SetProps not stored: %+v", m)
	}
	e := newPREnvDisk(t, d)
	a := e.session(0, prInitA, 1)
	e.mustProut(a, scsi.PROutRegister, 0, 0, 0xaa, pfAPTPL)
	e.mustProut(a, scsi.PROutReserve, prTypeEA, 0xaa, 0, 0)
	a.Close()
	if _, ok := f.Props("tank/v")[zvol.PropPR]; !ok {
		t.Fatal("APTPL state not stored in org.costar:pr")
	}
	d.Close()
	d, err := importZvol(ctx, f, "tank/v", OpenOptions{Expect: g}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	e = newPREnvDisk(t, d)
	a = e.session(0, prInitA, 1)
	if _, keys := e.readKeys(a); len(keys) != 1 || keys[0] != 0xaa {
		t.Fatalf("keys after reimport %x", keys)
	}
	a.Close()
	if err := f.Snapshot(ctx, "tank/v", "s", nil); err != nil {
		t.Fatal(err)
	}
	d.Close()
	// A copy does not inherit the reservations, and clears the property it received.
	if err := f.Receive("tank/v@s", "tank/copy", true); err != nil {
		t.Fatal(err)
	}
	c, err := importZvol(ctx, f, "tank/copy", OpenOptions{}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e = newPREnvDisk(t, c)
	a = e.session(0, prInitA, 1)
	if _, keys := e.readKeys(a); len(keys) != 0 {
		t.Fatalf("copy has keys %x", keys)
	}
	a.Close()
	if pr, err := zvol.DecodePR(f.Props("tank/copy")[zvol.PropPR]); err != nil || len(pr) != 0 {
		t.Fatalf("copy's org.costar:pr = %q, %v", f.Props("tank/copy")[zvol.PropPR], err)
	}
}

func ptrTo[T any](v T) *T { return &v }
