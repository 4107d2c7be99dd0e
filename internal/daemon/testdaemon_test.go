package daemon

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/costar-project/costar/config"
)

// testConfig is the configuration the in-package daemon tests start from:
// state in a temporary directory, one iSCSI portal on a free loopback
// port, and the API socket in a short directory of its own (sun_path is
// too short for t.TempDir's paths).
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "costar")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	return &config.Config{StateDir: t.TempDir(), Socket: filepath.Join(sockDir, "s"), ShutdownSeconds: 5,
		ISCSI: config.ISCSIConfig{Portals: []string{"127.0.0.1:0"}, AbortCompletedTask: config.AbortTaskDoesNotExist}}
}

// quietLog discards the daemon's log.
func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
