// Package mgmt holds the management-plane integration tests: they build
// the real stmfd, stmfadm (also as sbdadm) and itadm, start stmfd on a
// random loopback port with a temporary state directory and socket, and
// drive the binaries as an administrator or a script (Proxmox VE's
// "Comstar" driver) would.
package mgmt

import (
	"os"
	"testing"

	"github.com/costar-project/costar/test/harness"
)

// suite builds the binaries once for all the tests of this package.
var suite = harness.NewSuite("mgmt")

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }

// startDaemon starts stmfd on stateDir (harness.Suite.Start with the
// test's context).
func startDaemon(t *testing.T, stateDir string) *harness.Daemon {
	t.Helper()
	return suite.Start(t.Context(), t, stateDir, harness.Options{})
}
