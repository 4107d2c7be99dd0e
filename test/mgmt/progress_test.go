package mgmt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/costar-project/costar/test/harness"
)

// Ctrl-C on a long create-lu, with the real stmfd: stmfadm closes its
// half of the stream, stmfd cancels the allocation mid-way and undoes it,
// stmfadm reports the cancel, and nothing is left: no file, no LU, the
// configuration as it was. Then the same create runs to the end.
func TestCreateLUCancelled(t *testing.T) {
	dir := harness.TempDir(t, "pg")
	d := startDaemon(t, filepath.Join(dir, "state"))
	before := snapshot(t, d)
	path := filepath.Join(dir, "big.img")

	stdout, stderr, code := d.Interrupt(func(line string) bool { return strings.Contains(line, ": writing zeroes to "+path) },
		"stmfadm", "create-lu", "--progress", "-p", "preallocation=full", "-s", "2g", path)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "stmfadm: cancelled; nothing was changed\n") ||
		!strings.Contains(stderr, ": cancelled after ") {
		t.Fatalf("interrupted create-lu: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data file is left: %v", err)
	}
	if left, _ := filepath.Glob(path + "*"); len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
	sameSnapshot(t, "after the cancelled create-lu", before, snapshot(t, d))
	if !strings.Contains(d.Log(), "management API call cancelled by the client") {
		t.Errorf("stmfd did not log the cancel:\n%s", d.LogTail(20))
	}

	// Not interrupted: the LU is made, allocated, and stdout is as ever.
	small := filepath.Join(dir, "small.img")
	out, errs, code := d.Run("", "stmfadm", "create-lu", "--progress", "-p", "preallocation=falloc", "-s", "8m", small)
	if code != 0 || !strings.HasPrefix(out, "Logical unit created: ") || !strings.Contains(errs, ": done after ") {
		t.Fatalf("create-lu: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	fi, err := os.Stat(small)
	if err != nil || fi.Size() != 8*mib+64<<10 {
		t.Fatalf("data file %v %v", fi, err)
	}
}
