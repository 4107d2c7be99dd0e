package daemon

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/costar-project/costar/internal/daemon/mgmt"
)

// TestLUProviderDeferredJournal: in cluster mode (deferJournal) neither
// create-lu nor import-lu touches a file LU's WRITE ATOMIC journal; the
// takeover's SetFence makes (and replays) it. Single-node mode makes it at
// create, as before.
func TestLUProviderDeferredJournal(t *testing.T) {
	ctx := context.Background()
	exists := func(path string) bool {
		_, err := os.Stat(path)
		return err == nil
	}
	fence := func(t *testing.T, l mgmt.LU, token int64) {
		t.Helper()
		f, ok := l.(interface{ SetFence(int64) error })
		if !ok {
			t.Fatal("the LU has no SetFence")
		}
		if err := f.SetFence(token); err != nil {
			t.Fatalf("SetFence(%d): %v", token, err)
		}
	}
	for _, deferJournal := range []bool{false, true} {
		t.Run(map[bool]string{false: "single node", true: "cluster"}[deferJournal], func(t *testing.T) {
			p := newLUProvider([6]byte{0xc0, 0xa8, 1, 1}, quietLog())
			p.deferJournal = deferJournal
			data := filepath.Join(t.TempDir(), "a.img")
			journal := data + ".atomic"
			l, err := p.Create(ctx, mgmt.LUSpec{DataFile: data, Size: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if got := exists(journal); got == deferJournal {
				t.Fatalf("journal made by create-lu: %v, want %v", got, !deferJournal)
			}
			fence(t, l, 3)
			if !exists(journal) {
				t.Fatal("no journal after the takeover")
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(journal); err != nil {
				t.Fatal(err)
			}
			l2, err := p.Import(ctx, data, "")
			if err != nil {
				t.Fatal(err)
			}
			defer l2.Close()
			if got := exists(journal); got == deferJournal {
				t.Fatalf("journal made by import-lu: %v, want %v", got, !deferJournal)
			}
			fence(t, l2, 4)
			if !exists(journal) {
				t.Fatal("no journal after the second takeover")
			}
		})
	}
}
