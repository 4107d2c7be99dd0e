package esx

import (
	"os"
	"testing"

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
