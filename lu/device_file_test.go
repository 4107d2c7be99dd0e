package lu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/costar-project/costar/stmf"
)

func mustCreate(t *testing.T, cfg fileConfig) *Device {
	t.Helper()
	d, err := createFile(context.Background(), cfg, &GUIDGenerator{}, quietLog())
	if err != nil {
		t.Fatalf("Create(%+v): %v", cfg, err)
	}
	return d
}

// headerSize is where a file LU's data starts after its metadata header.
const headerSize = 64 << 10

func TestMetadataRoundTrip(t *testing.T) {
	for _, separate := range []bool{false, true} {
		name := "header"
		if separate {
			name = "meta file"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := fileConfig{
				DataFile:           filepath.Join(dir, "data"),
				Size:               8 << 20,
				BlockSize:          4096,
				VendorID:           "ACME",
				ProductID:          "Thing",
				Serial:             "SN-42",
				Alias:              "vm datastore",
				MgmtURL:            "https://example.invalid/lu",
				WriteCacheDisabled: true,
				WriteProtect:       true,
			}
			if separate {
				cfg.MetaFile = filepath.Join(dir, "meta")
			}
			d := mustCreate(t, cfg)
			want := d.Info()
			if want.GUID.IsZero() || !strings.HasPrefix(want.GUID.String(), "600144F0") {
				t.Fatalf("generated GUID %s", want.GUID)
			}
			if err := d.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			st, err := os.Stat(cfg.DataFile)
			if err != nil {
				t.Fatal(err)
			}
			wantFile := int64(cfg.Size)
			if !separate {
				wantFile += headerSize
			}
			if st.Size() != wantFile {
				t.Errorf("data file is %d bytes, want %d", st.Size(), wantFile)
			}

			d2, err := importFile(context.Background(), cfg.DataFile, cfg.MetaFile, quietLog())
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			defer d2.Close()
			if got := d2.Info(); got != want {
				t.Fatalf("imported %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestImportMetaFileOnly(t *testing.T) {
	dir := t.TempDir()
	cfg := fileConfig{DataFile: filepath.Join(dir, "data"), MetaFile: filepath.Join(dir, "meta"), Size: 1 << 20}
	d := mustCreate(t, cfg)
	g := d.GUID()
	d.Close()
	d2, err := importFile(context.Background(), "", cfg.MetaFile, quietLog())
	if err != nil {
		t.Fatalf("Import with the meta file only: %v", err)
	}
	defer d2.Close()
	if d2.GUID() != g || d2.Info().DataFile != cfg.DataFile {
		t.Fatalf("imported %s from %s, want %s from %s", d2.GUID(), d2.Info().DataFile, g, cfg.DataFile)
	}
}

func TestImportAfterMove(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a")
	d := mustCreate(t, fileConfig{DataFile: src, Size: 1 << 20, Alias: "moved"})
	g := d.GUID()
	d.Close()
	dst := filepath.Join(dir, "b")
	if err := os.Rename(src, dst); err != nil {
		t.Fatal(err)
	}
	d2, err := importFile(context.Background(), dst, "", quietLog())
	if err != nil {
		t.Fatalf("Import after move: %v", err)
	}
	if d2.GUID() != g || d2.Info().Alias != "moved" || d2.Info().DataFile != dst {
		t.Fatalf("after move: %+v", d2.Info())
	}
	d2.Close()
	// The new location was recorded.
	d3, err := importFile(context.Background(), dst, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Close()
	if d3.md.DataFile != dst {
		t.Fatalf("stored data file %q, want %q", d3.md.DataFile, dst)
	}
}

// corruptSlot flips a byte inside a metadata slot's payload (slots are
// 32 KiB with a 32-byte header).
func corruptSlot(t *testing.T, path string, slot int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := int64(slot)*(32<<10) + 32 + 8
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestImportRefuses(t *testing.T) {
	dir := t.TempDir()

	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("tiny"), 0o600); err != nil {
		t.Fatal(err)
	}
	both := filepath.Join(dir, "both")
	d := mustCreate(t, fileConfig{DataFile: both, Size: 1 << 20})
	d.Close()
	corruptSlot(t, both, 0)
	corruptSlot(t, both, 1)

	shrunk := filepath.Join(dir, "shrunk")
	d = mustCreate(t, fileConfig{DataFile: shrunk, Size: 1 << 20})
	d.Close()
	if err := os.Truncate(shrunk, headerSize+4096); err != nil {
		t.Fatal(err)
	}

	sepData, sepMeta := filepath.Join(dir, "sd"), filepath.Join(dir, "sm")
	d = mustCreate(t, fileConfig{DataFile: sepData, MetaFile: sepMeta, Size: 1 << 20})
	d.Close()

	tests := []struct {
		name       string
		data, meta string
		noMeta     bool // errors.Is(err, ErrNoMetadata)
		contains   string
	}{
		{"file without metadata", plain, "", true, "not an LU"},
		{"file smaller than the region", small, "", true, ""},
		{"both copies damaged", both, "", true, "damaged"},
		{"data shorter than the LU", shrunk, "", false, "needs"},
		{"header-less data file imported without its meta file", sepData, "", true, ""},
		{"missing file", filepath.Join(dir, "nope"), "", false, "no such file"},
		{"nothing given", "", "", false, "no data file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := importFile(context.Background(), tc.data, tc.meta, quietLog())
			if err == nil {
				d.Close()
				t.Fatal("Import succeeded")
			}
			if tc.noMeta != errors.Is(err, ErrNoMetadata) {
				t.Errorf("errors.Is(err, ErrNoMetadata) = %v, want %v (err: %v)", !tc.noMeta, tc.noMeta, err)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not mention %q", err, tc.contains)
			}
		})
	}
}

func TestCreateValidation(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, make([]byte, headerSize+3*4096+100), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cfg      fileConfig
		wantErr  string
		wantSize uint64
	}{
		{"size derived from an existing file", fileConfig{DataFile: existing, BlockSize: 4096}, "", 3 * 4096},
		{"new file needs a size", fileConfig{DataFile: filepath.Join(dir, "n1")}, "no size", 0},
		{"size not a block multiple", fileConfig{DataFile: filepath.Join(dir, "n2"), Size: 1000}, "multiple", 0},
		{"block size not a power of two", fileConfig{DataFile: filepath.Join(dir, "n3"), Size: 1 << 20, BlockSize: 1000}, "block size", 0},
		{"block size too large", fileConfig{DataFile: filepath.Join(dir, "n4"), Size: 1 << 20, BlockSize: 131072}, "block size", 0},
		{"vendor id too long", fileConfig{DataFile: filepath.Join(dir, "n5"), Size: 1 << 20, VendorID: "NINECHARS"}, "vendor id", 0},
		{"product id too long", fileConfig{DataFile: filepath.Join(dir, "n6"), Size: 1 << 20, ProductID: strings.Repeat("p", 17)}, "product id", 0},
		{"serial too long", fileConfig{DataFile: filepath.Join(dir, "n7"), Size: 1 << 20, Serial: strings.Repeat("s", 253)}, "serial", 0},
		{"non-ASCII product id", fileConfig{DataFile: filepath.Join(dir, "n8"), Size: 1 << 20, ProductID: "dïsk"}, "product id", 0},
		{"no data file", fileConfig{Size: 1 << 20}, "no data file", 0},
		{"directory", fileConfig{DataFile: dir, Size: 1 << 20}, "neither", 0},
		{"explicit GUID, grown file", fileConfig{DataFile: filepath.Join(dir, "n9"), Size: 2 << 20,
			GUID: stmf.GUID{0x60, 0x01, 0x44, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}, "", 2 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := createFile(context.Background(), tc.cfg, nil, quietLog())
			if tc.wantErr != "" {
				if err == nil {
					d.Close()
					t.Fatalf("Create succeeded, want error containing %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not mention %q", err, tc.wantErr)
				}
				if tc.cfg.DataFile != "" && tc.cfg.DataFile != dir {
					if _, serr := os.Stat(tc.cfg.DataFile); serr == nil {
						t.Errorf("failed Create left %s behind", tc.cfg.DataFile)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			defer d.Close()
			if got := d.Info().Size; got != tc.wantSize {
				t.Errorf("size %d, want %d", got, tc.wantSize)
			}
			if !tc.cfg.GUID.IsZero() && d.GUID() != tc.cfg.GUID {
				t.Errorf("GUID %s, want the given %s", d.GUID(), tc.cfg.GUID)
			}
			if i := d.Info(); i.VendorID != DefaultVendorID || i.ProductID != DefaultProductID || i.BlockSize == 0 {
				t.Errorf("defaults not applied: %+v", i)
			}
		})
	}
}

func TestCreateCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := createFile(ctx, fileConfig{DataFile: filepath.Join(t.TempDir(), "x"), Size: 1 << 20}, nil, quietLog()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with a cancelled context: %v", err)
	}
}

func TestSetPropsAndResizePersist(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data")
	d := mustCreate(t, fileConfig{DataFile: path, Size: 1 << 20})
	alias, url, yes := "renamed", "http://x.invalid", true
	if err := d.SetProps(Props{Alias: &alias, MgmtURL: &url, WriteCacheDisabled: &yes, WriteProtect: &yes}); err != nil {
		t.Fatal(err)
	}
	if err := d.Resize(4 << 20); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	if err := d.Resize(1000); err == nil {
		t.Fatal("Resize to a non-multiple of the block size succeeded")
	}
	want := d.Info()
	d.Close()
	if err := d.SetProps(Props{Alias: &alias}); err == nil {
		t.Fatal("SetProps after Close succeeded")
	}
	d2, err := importFile(context.Background(), path, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	got := d2.Info()
	if got != want || got.Size != 4<<20 || !got.WriteProtect || !got.WriteCacheDisabled || got.Alias != alias {
		t.Fatalf("after reimport %+v, want %+v", got, want)
	}
}
