package mgmt

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// The upgrade fixture: a state directory and its LU files written by the
// previous release (test/testdata/make-upgrade-fixture.sh, whose facts
// these constants repeat), and what that release's CLIs listed for it.
const (
	upgradeDir    = "../testdata/upgrade"
	upgradeTarget = "iqn.2026-11.org.costar.upgrade:default"
	upgradeHolder = "iqn.2026-11.org.costar.upgrade:holder" // registered with ISID ...07
	upgradeKey    = uint64(0x0123456789abcdef)
)

// TestUpgradeFromPreviousRelease starts today's stmfd on the previous
// release's state directory: every listing is byte-for-byte what that
// release showed (LUs with their GUIDs and properties, views with their
// LUNs, groups, targets, portal groups, initiators, defaults, ALUA
// states), the data LU holds the pattern written before, and the
// persistent reservation taken with APTPL is still registered and enforced.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	suite.Binaries(t)
	harness.RequireTools(t, "tar")
	ctx := harness.Context(t, 3*time.Minute)
	dir := harness.TempDir(t, "up")
	fixture, err := filepath.Abs(filepath.Join(upgradeDir, "fixture.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	harness.MustExec(ctx, t, "tar", "-xzf", fixture, "-C", dir)
	// The fixture's paths and portal group port are placeholders in
	// stmf.json (the one state file naming them); the rest is as written.
	tpgPort := harness.FreePortOn(t, "127.0.0.2")
	fill := strings.NewReplacer("@ROOT@", dir, "@TPGPORT@", tpgPort)
	stateFile := filepath.Join(dir, "state", "stmf.json")
	st, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateFile, []byte(fill.Replace(string(st))), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, filepath.Join(dir, "state"))

	raw, err := os.ReadFile(filepath.Join(upgradeDir, "expected"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer("@ROOT@", dir, "@TPGPORT@", tpgPort, "@PORTAL@", d.Portal).Replace(string(raw))
	if got := listing(t, d, want); got != want {
		t.Errorf("listings after the upgrade differ from the previous release's:\n%s", firstDiff(want, got))
	}

	// The pattern: 0xa5 in the first MiB, 0x3c in the 512 bytes at 3 MiB,
	// zeros between.
	reader := harness.Login(ctx, t, d.Portal, upgradeTarget, "iqn.2026-11.org.costar.upgrade:reader", 1)
	harness.Ready(ctx, t, reader, 0)
	for _, c := range []struct {
		lba     uint64
		blocks  uint32
		pattern byte
	}{{0, 2048, 0xa5}, {2048, 2048, 0x00}, {6143, 1, 0x00}, {6144, 1, 0x3c}, {6145, 1, 0x00}} {
		r := harness.Good(ctx, t, reader, 0, initiator.Read16(c.lba, c.blocks), nil, c.blocks*512)
		if len(r.Data) != int(c.blocks)*512 || !bytes.Equal(r.Data, bytes.Repeat([]byte{c.pattern}, len(r.Data))) {
			t.Errorf("LBA %d (+%d blocks): want every byte %#x, got %d bytes starting % x", c.lba, c.blocks, c.pattern, len(r.Data), r.Data[:min(16, len(r.Data))])
		}
	}

	// The reservation taken with APTPL: same key and holder, still enforced.
	if keys := harness.ReadKeys(ctx, t, reader, 0); !slices.Equal(keys, []uint64{upgradeKey}) {
		t.Fatalf("READ KEYS after the upgrade: %x, want [%x]", keys, upgradeKey)
	}
	if k, typ, ok := harness.ReadReservation(ctx, t, reader, 0); !ok || k != upgradeKey || typ != harness.PRTypeWERO {
		t.Fatalf("READ RESERVATION after the upgrade: key %x type %d (%v), want %x WE-RO", k, typ, ok, upgradeKey)
	}
	if r := harness.Do(ctx, t, reader, 0, initiator.Write16(8000, 1), make([]byte, 512), 0); r.Status != initiator.StatusReservationConflict {
		t.Fatalf("unregistered WRITE under the restored WE-RO: %v, want RESERVATION CONFLICT", r)
	}
	holder := harness.Login(ctx, t, d.Portal, upgradeTarget, upgradeHolder, 7)
	harness.Ready(ctx, t, holder, 0)
	harness.Good(ctx, t, holder, 0, initiator.Write16(8000, 1), make([]byte, 512), 0)
}

// listing runs every "$ tool args" command of want in order and returns
// the same shape: the command line, then its standard output.
func listing(t *testing.T, d *harness.Daemon, want string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.SplitAfter(want, "\n") {
		cmd, ok := strings.CutPrefix(line, "$ ")
		if !ok {
			continue
		}
		argv := strings.Fields(cmd)
		b.WriteString(line)
		b.WriteString(d.OK(argv[0], argv[1:]...))
	}
	return b.String()
}

// firstDiff shows where two listings part.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\nwant: " + strconv.Quote(wl) + "\n got: " + strconv.Quote(gl) + "\nwhole output:\n" + got
		}
	}
	return "(same lines)"
}
