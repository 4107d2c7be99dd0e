package daemon

import (
	"testing"

	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/portprovider/iscsi"
)

func TestTargetConfig(t *testing.T) {
	tc := targetConfig(mgmt.TargetSpec{Name: "iqn.2026-11.org.test:t", Alias: "a", ISCSI: mgmt.ISCSITargetSpec{
		PortalGroups: []mgmt.PortalGroup{{Name: "fast", Tag: 2, Portals: []string{"127.0.0.2:3260"}}, {Name: "7", Tag: 7, Portals: []string{"127.0.0.3:3260", "[::1]:3260"}}}}})
	if tc.Name != "iqn.2026-11.org.test:t" || tc.Alias != "a" || len(tc.PortalGroups) != 2 ||
		tc.PortalGroups[0].Tag != 2 || tc.PortalGroups[1].Tag != 7 || len(tc.PortalGroups[1].Portals) != 2 {
		t.Fatalf("%+v", tc)
	}
	if def := targetConfig(mgmt.TargetSpec{Name: "iqn.2026-11.org.test:d"}); len(def.PortalGroups) != 0 || def.TPGT != mgmt.DefaultTPGT {
		t.Fatalf("default portal group: %+v", def)
	}
	// The daemon passes --abort-completed-task through unchanged.
	if config.AbortFunctionComplete != iscsi.AbortFunctionComplete || config.AbortTaskDoesNotExist != iscsi.AbortTaskDoesNotExist {
		t.Fatal("config and iscsi disagree on the --abort-completed-task values")
	}
}
