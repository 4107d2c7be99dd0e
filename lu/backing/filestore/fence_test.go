package filestore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/costar-project/costar/lu/backing"
)

var _ backing.Fencer = (*Store)(nil)

// twoNodeStores creates an LU and opens it a second time: two Store
// objects on the same files, as two cluster nodes sharing them.
func twoNodeStores(t *testing.T, sidecar bool) (a, b *Store, metaPath string) {
	t.Helper()
	dir := t.TempDir()
	o := Options{DataFile: filepath.Join(dir, "lu.img"), Size: 1 << 20, Log: quietLog(), NoAtomicWrites: true}
	metaPath = o.DataFile
	if sidecar {
		o.MetaFile = filepath.Join(dir, "lu.meta")
		metaPath = o.MetaFile
	}
	a, err := Create(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.SaveMeta(&backing.Meta{GUID: [16]byte{0x60, 7}, Size: 1 << 20, BlockSize: 512, Alias: "created"}); err != nil {
		t.Fatal(err)
	}
	b, err = Open(context.Background(), o.DataFile, o.MetaFile, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b, metaPath
}

func TestFenceTwoStores(t *testing.T) {
	for _, sidecar := range []bool{false, true} {
		t.Run(map[bool]string{false: "header", true: "meta file"}[sidecar], func(t *testing.T) {
			a, b, _ := twoNodeStores(t, sidecar)
			meta := func(s *Store) *backing.Meta {
				t.Helper()
				m, err := s.LoadMeta()
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			steps := []struct {
				name    string
				do      func() error
				fenced  bool
				stored  int64
				alias   string // "" = not checked
				errOnly bool   // any error wanted (not ErrFenced)
			}{
				{"A fences 5", func() error { return a.Fence(5) }, false, 5, "created", false},
				{"A checks 5", func() error { return a.CheckFence(5) }, false, 5, "", false},
				{"A saves", func() error {
					return a.SaveMeta(&backing.Meta{GUID: [16]byte{0x60, 7}, Size: 1 << 20, BlockSize: 512, Alias: "a1"})
				}, false, 5, "a1", false},
				{"B fences 9", func() error { return b.Fence(9) }, false, 9, "a1", false},
				{"A checks 5", func() error { return a.CheckFence(5) }, true, 9, "", false},
				{"A saves (token 5 in the record)", func() error {
					return a.SaveMeta(&backing.Meta{GUID: [16]byte{0x60, 7}, Size: 1 << 20, BlockSize: 512, Alias: "late", FenceToken: 5})
				}, true, 9, "a1", false},
				{"A fences 7", func() error { return a.Fence(7) }, true, 9, "a1", false},
				{"B checks 9", func() error { return b.CheckFence(9) }, false, 9, "", false},
				{"B saves (a record without the token)", func() error {
					return b.SaveMeta(&backing.Meta{GUID: [16]byte{0x60, 7}, Size: 1 << 20, BlockSize: 512, Alias: "b1"})
				}, false, 9, "b1", false},
				{"A fences 12 (takes it back)", func() error { return a.Fence(12) }, false, 12, "b1", false},
				{"B checks 9", func() error { return b.CheckFence(9) }, true, 12, "", false},
				{"B saves", func() error {
					return b.SaveMeta(&backing.Meta{GUID: [16]byte{0x60, 7}, Size: 1 << 20, BlockSize: 512, Alias: "b2"})
				}, true, 12, "b1", false},
				{"A fences 0", func() error { return a.Fence(0) }, false, 12, "", true},
			}
			for _, s := range steps {
				err := s.do()
				switch {
				case s.errOnly:
					if err == nil || errors.Is(err, backing.ErrFenced) {
						t.Fatalf("%s: %v, want a plain error", s.name, err)
					}
				case s.fenced != errors.Is(err, backing.ErrFenced) || (!s.fenced && err != nil):
					t.Fatalf("%s: %v, fenced wanted: %v", s.name, err, s.fenced)
				}
				for _, s2 := range []*Store{a, b} {
					m := meta(s2)
					if m.FenceToken != s.stored {
						t.Fatalf("%s: stored token %d, want %d", s.name, m.FenceToken, s.stored)
					}
					if s.alias != "" && m.Alias != s.alias {
						t.Fatalf("%s: stored alias %q, want %q", s.name, m.Alias, s.alias)
					}
				}
			}
		})
	}
}

// Two nodes that save in turn (no fencing) each start from the newest
// copy on the medium: every save goes to the slot not holding it, so the
// previous copy survives as the fallback a torn write falls back to.
func TestSaveMetaStartsFromMedium(t *testing.T) {
	for _, sidecar := range []bool{false, true} {
		t.Run(map[bool]string{false: "header", true: "meta file"}[sidecar], func(t *testing.T) {
			a, b, path := twoNodeStores(t, sidecar)
			save := func(s *Store, alias string) {
				t.Helper()
				if err := s.SaveMeta(&backing.Meta{GUID: [16]byte{0x60, 7}, Size: 1 << 20, BlockSize: 512, Alias: alias}); err != nil {
					t.Fatal(err)
				}
			}
			prev := "created"
			for i, w := range []struct {
				s     *Store
				alias string
			}{{a, "a1"}, {b, "b1"}, {a, "a2"}, {a, "a3"}, {b, "b2"}} {
				save(w.s, w.alias)
				img, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				var aliases [2]string
				var gens [2]uint64
				for k := 0; k < 2; k++ {
					m, gen, st, err := decodeSlot(img[k*metaSlotSize : (k+1)*metaSlotSize])
					if st != slotValid {
						t.Fatalf("save %d: slot %d %v: %v", i, k, st, err)
					}
					aliases[k], gens[k] = m.Alias, gen
				}
				newest := 0
				if gens[1] > gens[0] {
					newest = 1
				}
				if aliases[newest] != w.alias || aliases[1-newest] != prev {
					t.Fatalf("save %d (%s): slots hold %q (newest) and %q, want %q and %q",
						i, w.alias, aliases[newest], aliases[1-newest], w.alias, prev)
				}
				prev = w.alias
				if gens[0] == gens[1] {
					t.Fatalf("save %d: both slots at generation %d", i, gens[0])
				}
			}
		})
	}
}

// The token's TLV: absent when 0 (files stay as older versions wrote
// them), round-trips, and a version that does not know it keeps it.
func TestFenceTokenTag(t *testing.T) {
	base := backing.Meta{GUID: [16]byte{0x60, 1}, Size: 4096, BlockSize: 512}
	tests := []struct {
		name    string
		token   int64
		wantTag bool
	}{
		{"never fenced", 0, false},
		{"fenced", 42, true},
		{"big revision", 1 << 40, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &metadata{Meta: base, DataOffset: headerDataOffset}
			m.FenceToken = tc.token
			img, err := m.encodeSlot(3)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(img[metaHeaderLen:], []byte{0, tagFenceToken, 0, 0, 0, 8}); got != tc.wantTag {
				t.Fatalf("tag present %v, want %v", got, tc.wantTag)
			}
			got, _, st, err := decodeSlot(img)
			if st != slotValid || got.FenceToken != tc.token || len(got.Unknown) != 0 {
				t.Fatalf("decode: %v %v token %d unknown %v", st, err, got.FenceToken, got.Unknown)
			}
		})
	}
	// An older version kept tag 30 as unknown; that copy, written back,
	// still carries the token for this version.
	old := &metadata{Meta: base, DataOffset: headerDataOffset}
	old.Unknown = []backing.Field{{Tag: tagFenceToken, Val: u64b(77)}}
	img, err := old.encodeSlot(5)
	if err != nil {
		t.Fatal(err)
	}
	got, _, st, err := decodeSlot(img)
	if st != slotValid || got.FenceToken != 77 {
		t.Fatalf("written back by an older version: %v %v token %d", st, err, got.FenceToken)
	}
	bad := append(appendTLV(appendTLV(appendTLV(nil, tagGUID, base.GUID[:]), tagSize, u64b(4096)), tagBlockSize, u32b(512)),
		appendTLV(nil, tagFenceToken, []byte{0x80, 0, 0, 0, 0, 0, 0, 1})...)
	if _, err := decodePayload(bad); err == nil {
		t.Error("a negative token decoded")
	}
}

// A torn metadata update falls back to the previous copy, which carries
// the token too: every save writes it, so only a Fence that never
// returned (its node never served) can be lost that way.
func TestFenceTokenSurvivesTornSave(t *testing.T) {
	for _, sidecar := range []bool{false, true} {
		t.Run(map[bool]string{false: "header", true: "meta file"}[sidecar], func(t *testing.T) {
			a, b, path := twoNodeStores(t, sidecar)
			if err := a.Fence(5); err != nil {
				t.Fatal(err)
			}
			if err := b.Fence(9); err != nil {
				t.Fatal(err)
			}
			if err := b.SaveMeta(&backing.Meta{GUID: [16]byte{0x60, 7}, Size: 1 << 20, BlockSize: 512, Alias: "torn"}); err != nil {
				t.Fatal(err)
			}
			// Tear the newest slot (b's save): flip a payload byte.
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			off := int64(b.region.slot)*metaSlotSize + metaHeaderLen + 2
			var c [1]byte
			if _, err := f.ReadAt(c[:], off); err != nil {
				t.Fatal(err)
			}
			c[0] ^= 0xff
			if _, err := f.WriteAt(c[:], off); err != nil {
				t.Fatal(err)
			}
			m, err := a.LoadMeta()
			if err != nil {
				t.Fatal(err)
			}
			if m.Alias == "torn" || m.FenceToken != 9 {
				t.Fatalf("after the torn save: alias %q token %d, want the previous copy with token 9", m.Alias, m.FenceToken)
			}
			if err := a.CheckFence(5); !errors.Is(err, backing.ErrFenced) {
				t.Fatalf("A's check after the torn save: %v, want ErrFenced", err)
			}
		})
	}
}
