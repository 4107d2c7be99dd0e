package filestore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/costar-project/costar/lu/backing"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var goldenGUID = [16]byte{0x60, 0x0c, 0x0f, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe}

// goldenFile copies a testdata image (made by the code before the
// store split) to a temporary file of size bytes.
func goldenFile(t *testing.T, name, dst string, size int64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(dst, size); err != nil {
		t.Fatal(err)
	}
}

// The metadata formats are unchanged: LU files made by earlier versions
// import with the same GUID and properties, and re-encoding what was read
// gives the same bytes.
func TestGoldenImport(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		sidecar  bool
		want     backing.Meta
		wantOff  uint64
		wantFile int64
	}{
		{"header", false, backing.Meta{GUID: goldenGUID, Size: 1 << 20, BlockSize: 4096, Flags: backing.FlagWCD,
			VendorID: "ACME", ProductID: "GOLD", Serial: "SER123", Alias: "golden", MgmtURL: "http://x/y",
			PR: []byte{1, 1, 0, 0, 0, 7, 0, 0xff, 0xff, 0, 0}, Thin: true, SoftThreshold: 80,
			Unknown: []backing.Field{{Tag: 999, Val: []byte("future")}}}, headerDataOffset, headerDataOffset + 1<<20},
		{"sidecar", true, backing.Meta{GUID: goldenGUID, Size: 1 << 20, BlockSize: 512, Flags: backing.FlagWP,
			VendorID: "ACME", ProductID: "GOLD", Serial: "SER123", Alias: "golden", MgmtURL: "http://x/y"}, 0, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data, meta := filepath.Join(dir, "lu.img"), ""
			if tc.sidecar {
				meta = filepath.Join(dir, "lu.meta")
				goldenFile(t, "sidecar-v1.meta", meta, metaRegionSize)
				if err := os.WriteFile(data, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(data, tc.wantFile); err != nil {
					t.Fatal(err)
				}
			} else {
				goldenFile(t, "header-v1.img", data, tc.wantFile)
			}
			// Byte for byte: the newest slot re-encodes to itself.
			img, err := os.ReadFile(map[bool]string{false: data, true: meta}[tc.sidecar])
			if err != nil {
				t.Fatal(err)
			}
			var newest []byte
			var md *metadata
			var gen uint64
			for i := 0; i < 2; i++ {
				slot := img[i*metaSlotSize : (i+1)*metaSlotSize]
				m, g, st, err := decodeSlot(slot)
				if st == slotValid && (md == nil || g > gen) {
					md, gen, newest = m, g, slot
				} else if st != slotValid {
					t.Fatalf("slot %d: %v %v", i, st, err)
				}
			}
			if md.DataOffset != tc.wantOff {
				t.Fatalf("data offset %d, want %d", md.DataOffset, tc.wantOff)
			}
			re, err := md.encodeSlot(gen)
			if err != nil || !bytes.Equal(re, newest[:len(re)]) {
				t.Fatalf("re-encoding differs (%v)", err)
			}

			s, err := Open(ctx, data, meta, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, err := s.LoadMeta()
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.DataFile = data // the moved LU's new place is recorded
			if got.DataFile != data || !metaEqual(got, &want) {
				t.Fatalf("imported\n%+v\nwant\n%+v", got, &want)
			}
			if s.Size() != 1<<20 {
				t.Fatalf("capacity %d", s.Size())
			}
		})
	}
}

func metaEqual(a, b *backing.Meta) bool {
	if len(a.Unknown) != len(b.Unknown) || !bytes.Equal(a.PR, b.PR) {
		return false
	}
	for i := range a.Unknown {
		if a.Unknown[i].Tag != b.Unknown[i].Tag || !bytes.Equal(a.Unknown[i].Val, b.Unknown[i].Val) {
			return false
		}
	}
	x, y := *a, *b
	x.Unknown, y.Unknown, x.PR, y.PR = nil, nil, nil, nil
	return reflect.DeepEqual(x, y)
}

// corruptSlot flips a byte inside a metadata slot's payload.
func corruptSlot(t *testing.T, path string, slot int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := int64(slot)*metaSlotSize + metaHeaderLen + 8
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func newMeta(alias, dataFile string) *backing.Meta {
	return &backing.Meta{GUID: goldenGUID, Size: 1 << 20, BlockSize: 512, Alias: alias, DataFile: dataFile}
}

// A torn newest slot leaves the previous copy in force; the next update
// goes to the damaged slot.
func TestTornSlot(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lu.img")
	s, err := Create(ctx, Options{DataFile: path, Size: 1 << 20, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveMeta(newMeta("one", path)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveMeta(newMeta("two", path)); err != nil {
		t.Fatal(err)
	}
	newest := s.region.slot
	s.Close()
	corruptSlot(t, path, newest)
	s, err = Open(ctx, path, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.LoadMeta(); err != nil || m.Alias != "one" {
		t.Fatalf("with a torn newest slot: %+v %v", m, err)
	}
	if err := s.SaveMeta(newMeta("three", path)); err != nil {
		t.Fatal(err)
	}
	if s.region.slot != newest {
		t.Fatalf("update went to slot %d, want the damaged slot %d", s.region.slot, newest)
	}
	s.Close()
	corruptSlot(t, path, 1-newest)
	s, err = Open(ctx, path, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m, _ := s.LoadMeta(); m.Alias != "three" {
		t.Fatalf("alias %q after repair", m.Alias)
	}
}

// An atomic write stopped after its journal step is replayed by Open.
func TestJournalReplay(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lu.img")
	s, err := Create(ctx, Options{DataFile: path, Size: 1 << 20, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveMeta(newMeta("j", path)); err != nil {
		t.Fatal(err)
	}
	if s.Caps().AtomicMax != maxAtomicBytes {
		t.Fatalf("atomic max %d", s.Caps().AtomicMax)
	}
	p := bytes.Repeat([]byte{7}, 4096)
	s.StopAfterJournal(func() bool { return true })
	if err := s.WriteAtomic(p, 8192); !errors.Is(err, errJournalStopped) {
		t.Fatalf("stopped write: %v", err)
	}
	got := make([]byte, len(p))
	if err := s.ReadAt(got, 8192); err != nil || bytes.Equal(got, p) {
		t.Fatalf("data written before the replay (%v)", err)
	}
	s.Close()
	s, err = Open(ctx, path, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.ReadAt(got, 8192); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("journal not replayed (%v)", err)
	}
	if pending, err := JournalPending(s.JournalPath()); err != nil || pending {
		t.Fatalf("record pending after replay: %v %v", pending, err)
	}
}

// Deallocate punches holes that Allocated reports, at LU offsets (behind
// the header).
func TestDeallocateAllocated(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lu.img")
	s, err := Create(ctx, Options{DataFile: path, Size: 1 << 20, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SaveMeta(newMeta("d", path)); err != nil {
		t.Fatal(err)
	}
	if mapped, end, err := s.Allocated(0, 1<<20); err != nil || mapped || end != 1<<20 {
		t.Skipf("no holes on this file system: %v %d %v", mapped, end, err)
	}
	if err := s.WriteAt(bytes.Repeat([]byte{1}, 64<<10), 128<<10, false); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off      int64
		mapped   bool
		wantEnd  int64
		describe string
	}{
		{0, false, 128 << 10, "hole before"},
		{128 << 10, true, 192 << 10, "data"},
		{192 << 10, false, 1 << 20, "hole after"},
	} {
		mapped, end, err := s.Allocated(c.off, 1<<20)
		if err != nil || mapped != c.mapped || end != c.wantEnd {
			t.Errorf("%s: mapped %v end %d (%v), want %v %d", c.describe, mapped, end, err, c.mapped, c.wantEnd)
		}
	}
	if err := s.Deallocate(128<<10, 64<<10); err != nil {
		t.Fatal(err)
	}
	if mapped, end, err := s.Allocated(0, 1<<20); err != nil || mapped || end != 1<<20 {
		t.Errorf("after deallocate: %v %d %v", mapped, end, err)
	}
	got := make([]byte, 64<<10)
	if err := s.ReadAt(got, 128<<10); err != nil || !bytes.Equal(got, make([]byte, len(got))) {
		t.Errorf("deallocated range does not read as zeroes (%v)", err)
	}
	if m, err := s.LoadMeta(); err != nil || m.Alias != "d" {
		t.Errorf("metadata damaged: %+v %v", m, err)
	}
}

// A failed create leaves nothing behind.
func TestDiscardRemovesCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lu.img")
	s, err := Create(context.Background(), Options{DataFile: path, Size: 1 << 20, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	s.Discard()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data file left behind: %v", err)
	}
}

// A deferred (cluster standby) open of a moved LU writes nothing: another
// node may own the LU and write its metadata.
func TestOpenDeferredWritesNoMetadata(t *testing.T) {
	data := filepath.Join(t.TempDir(), "moved.img")
	goldenFile(t, "header-v1.img", data, headerDataOffset+1<<20)
	before, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenDeferred(context.Background(), data, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before[:metaRegionSize], after[:metaRegionSize]) {
		t.Fatal("a deferred open rewrote the metadata region")
	}
}
