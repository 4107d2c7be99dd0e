// Package fcloop is an in-process stmfd serving the loopback FC adapter,
// for the CLI tests that need an FC target (fcinfo, stmfadm list-target).
// It is apart from test/harness because internal/daemon's own tests use
// the harness and this imports internal/daemon.
package fcloop

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/daemon"
	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/portprovider/fc/loopback"
)

// Our and the initiator's N_Port IDs on the loopback link.
const (
	TargetPortID    = 0x010100
	InitiatorPortID = 0x010200
)

// Fixture is an in-process stmfd serving the loopback FC adapter, for
// the CLI tests that need an FC target (fcinfo, stmfadm list-target). The
// target port is wwn.2100001B32010203 (node 2000001B32010203); LinkUp logs
// in the initiator wwn.10000000C9090909 (node 20000000C9090909).
type Fixture struct {
	Daemon  *daemon.Daemon
	Adapter *loopback.Adapter
	Socket  string // the management socket
}

// TargetWWPN is the fixture's target port name.
func TargetWWPN() fc.WWN { return fc.WWN{0x21, 0, 0, 0x1b, 0x32, 1, 2, 3} }

// Start starts the daemon (link still down) with opts beyond the adapter
// (daemon.WithFCPortGroup(fcloop.TargetWWPN(), …)); it is shut down when
// the test ends.
func Start(ctx context.Context, t *testing.T, opts ...daemon.Option) *Fixture {
	t.Helper()
	// The socket path must stay short (sun_path), so not under t.TempDir.
	sockDir, err := os.MkdirTemp("", "fc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "s")
	cfg := &config.Config{StateDir: t.TempDir(), Socket: sock, ShutdownSeconds: 5,
		ISCSI: config.ISCSIConfig{Portals: []string{"127.0.0.1:0"}, AbortCompletedTask: config.AbortTaskDoesNotExist}}
	ad := loopback.New(TargetWWPN(), fc.WWN{0x20, 0, 0, 0x1b, 0x32, 1, 2, 3})
	d, err := daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), append([]daemon.Option{daemon.WithFCAdapters(ad)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return &Fixture{Daemon: d, Adapter: ad, Socket: sock}
}

// LinkUp brings the link up at speedMbps and logs the fixture's initiator
// in (PLOGI, PRLI).
func (f *Fixture) LinkUp(ctx context.Context, t *testing.T, speedMbps int) *loopback.Initiator {
	t.Helper()
	if err := f.Adapter.LinkUp(ctx, TargetPortID, speedMbps); err != nil {
		t.Fatal(err)
	}
	in := f.Adapter.NewInitiator(InitiatorPortID, TargetPortID,
		fc.WWN{0x10, 0, 0, 0, 0xc9, 9, 9, 9}, fc.WWN{0x20, 0, 0, 0, 0xc9, 9, 9, 9})
	if err := in.Login(ctx); err != nil {
		t.Fatal(err)
	}
	return in
}
