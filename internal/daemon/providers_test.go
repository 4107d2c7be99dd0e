package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/costar-project/costar/internal/daemon/mgmt"
)

func TestLUProviderAdapter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := newLUProvider([6]byte{0xc0, 0xa8, 1, 1}, quietLog())
	oui := uint32(0x123456)
	host := [4]byte{0xde, 0xad, 0xbe, 0xef}
	data := filepath.Join(dir, "a.img")
	d, err := p.Create(ctx, mgmt.LUSpec{DataFile: data, Size: 1 << 20, OUI: &oui, HostID: &host, Alias: "a", VID: "V", WCD: true})
	if err != nil {
		t.Fatal(err)
	}
	g := d.GUID()
	if got := g.String()[:16]; got != "61234560DEADBEEF" {
		t.Errorf("GUID %s does not carry the OUI and host id", g)
	}
	in := d.Info()
	if in.Size != 1<<20 || in.Alias != "a" || in.VID != "V" || !in.WCD || in.DataFile != data || in.BlockSize != 512 {
		t.Errorf("info %+v", in)
	}
	if err := d.(mgmt.Resizer).Resize(ctx, 2<<20); err != nil {
		t.Fatal(err)
	}
	if err := d.(mgmt.Resizer).Resize(ctx, 1000); !errors.Is(err, mgmt.ErrSizeRange) {
		t.Errorf("odd resize: %v", err)
	}
	alias := "b"
	if err := d.(mgmt.PropSetter).SetProps(ctx, mgmt.LUChange{Alias: &alias}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2, err := p.Import(ctx, data, "")
	if err != nil {
		t.Fatal(err)
	}
	if in := d2.Info(); d2.GUID() != g || in.Size != 2<<20 || in.Alias != "b" {
		t.Errorf("imported %s %+v", d2.GUID(), in)
	}
	d2.Close()

	// Separate metadata: import-lu may name the meta file.
	data2, meta := filepath.Join(dir, "b.img"), filepath.Join(dir, "b.meta")
	d3, err := p.Create(ctx, mgmt.LUSpec{DataFile: data2, MetaFile: meta, Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d3.Close()
	d4, err := p.Import(ctx, meta, "")
	if err != nil {
		t.Fatalf("import by meta file: %v", err)
	}
	if in := d4.Info(); d4.GUID() != d3.GUID() || in.DataFile != data2 || in.MetaFile != meta {
		t.Errorf("imported by meta file: %+v", in)
	}
	d4.Close()

	// Failures are classified for COMSTAR's messages.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, make([]byte, 1<<20), 0o600)
	if _, err := p.Import(ctx, plain, ""); !errors.Is(err, mgmt.ErrNotAnLU) {
		t.Errorf("import of a plain file: %v", err)
	}
	if _, err := p.Import(ctx, filepath.Join(dir, "missing"), ""); !errors.Is(err, mgmt.ErrDataFile) {
		t.Errorf("import of a missing file: %v", err)
	}
	if _, err := p.Create(ctx, mgmt.LUSpec{DataFile: filepath.Join(dir, "nosize")}); !errors.Is(err, mgmt.ErrDataFile) {
		t.Errorf("create without size: %v", err)
	}
}
