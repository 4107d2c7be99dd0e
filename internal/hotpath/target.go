package hotpath

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/costar-project/costar/lu"
	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/memstore"
	"github.com/costar-project/costar/portprovider/iscsi"
	"github.com/costar-project/costar/stmf"
)

// The in-process target StartTarget serves: one memory LU as LUN 0.
const (
	Target    = "iqn.2026-12.test:hotpath"
	LUSize    = 64 << 20
	BlockSize = 512
)

// StartTarget runs portprovider/iscsi → stmf → lu over a memstore LU on
// loopback until the test ends and returns its address. A non-zero
// fenceToken fences the LU (cluster mode's check before every write).
// The benchmarks here and costar-loadgen's tests use it.
func StartTarget(tb testing.TB, fenceToken int64) string {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	fw := stmf.New(log)
	d, err := lu.New(ctx, memstore.New(LUSize, BlockSize, backing.Caps{}), lu.Config{Size: LUSize, BlockSize: BlockSize},
		&lu.GUIDGenerator{HostID: lu.HostIDFrom32(0x1234)}, log)
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.SetFence(fenceToken); err != nil {
		tb.Fatal(err)
	}
	if err := fw.RegisterLU(d); err != nil {
		tb.Fatal(err)
	}
	if _, err := fw.AddView(d.GUID(), stmf.ViewEntry{}, true); err != nil {
		tb.Fatal(err)
	}
	srv, err := iscsi.NewServer(fw, iscsi.Config{Portals: []string{"127.0.0.1:0"},
		Targets: []iscsi.TargetConfig{{Name: Target}}, Logger: log, LogoutWait: 50 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = d.Close()
	})
	return srv.Addrs()[0].String()
}
