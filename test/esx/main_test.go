package esx

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

const (
	mib = int64(1) << 20

	tgtDefault = "iqn.2026-11.org.costar.esx:default"
	tgtGrouped = "iqn.2026-11.org.costar.esx:grouped"
	hostA      = "iqn.1998-01.com.vmware:esx-a"
	hostB      = "iqn.1998-01.com.vmware:esx-b"
)

// suite builds the binaries once for all the tests of this package.
var suite = harness.NewSuite("esx")

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }

// oneLU starts stmfd with one 16 MiB LU in view of everyone through
// tgtDefault and returns a session from hostA that is past the power-on
// unit attention on LUN 0.
func oneLU(ctx context.Context, t *testing.T) (*harness.Daemon, *initiator.Session) {
	t.Helper()
	dir := harness.TempDir(t, "esx")
	d := suite.Start(ctx, t, filepath.Join(dir, "state"), harness.Options{})
	lu := d.CreateLU(harness.Backing(t, dir, "lu", 16*mib))
	d.OK("stmfadm", "add-view", lu)
	d.OK("itadm", "create-target", "-n", tgtDefault)
	s := harness.Login(ctx, t, d.Portal, tgtDefault, hostA, 0)
	harness.Ready(ctx, t, s, 0)
	return d, s
}
