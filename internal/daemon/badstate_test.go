package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/store"
)

// TestDamagedStateFileRefused: a state file that cannot be trusted stops
// the daemon at start with an error (even with --demo, which must not
// replace it), and the file is left byte for byte as it was, so the
// administrator can repair it and nothing configured is lost.
func TestDamagedStateFileRefused(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"not JSON", "{not json"},
		{"truncated", `{"version": 2, "lus": [{"guid": "600144F0`},
		{"future version", `{"version": 99}`},
		{"wrong types", `{"version": 2, "lus": "everything"}`},
		{"binary garbage", "\x00\x01\x02\xff\xfe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, store.FileName)
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load([]string{"--state-dir", dir, "--portal", "127.0.0.1:0", "--demo", "--socket", filepath.Join(dir, "s.sock")}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			d, err := New(cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err = d.Start(ctx)
				_ = d.Shutdown(ctx)
				cancel()
			}
			if err == nil {
				t.Fatal("the daemon started on a damaged state file")
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil || !bytes.Equal(got, []byte(tc.body)) {
				t.Fatalf("state file changed: %q (%v)", got, rerr)
			}
			if _, serr := os.Stat(filepath.Join(dir, "demo.img")); serr == nil {
				t.Fatal("a demo LU was created over the damaged state")
			}
			t.Logf("refused: %v", err)
		})
	}
}
