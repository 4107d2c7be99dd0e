package lu

import (
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// TestInquiryMULTIP: standard INQUIRY says MULTIP=1 exactly while the LU
// is reachable through more than one target port.
func TestInquiryMULTIP(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	multip := func(s *stmf.Session) bool {
		t.Helper()
		r := exec(t, d, req{cdb: inquiryCDB(false, 0, 96), dir: scsi.DirRead, expLen: 96, session: s})
		expectGood(t, "INQUIRY", r)
		return r.data[6]&0x10 != 0
	}
	if multip(nil) {
		t.Fatal("MULTIP set on an LU no framework serves")
	}
	fw := stmf.New(quietLog())
	if err := fw.RegisterLU(d); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(d.GUID(), stmf.ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	p1, err := fw.RegisterPort(iscsiPortSpec(prTarget, 1))
	if err != nil {
		t.Fatal(err)
	}
	s, err := p1.OpenSession(iscsiInitiator(prInitA, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if multip(s) {
		t.Error("MULTIP set with one target port")
	}
	if _, err := fw.RegisterPort(iscsiPortSpec(prTarget, 2)); err != nil {
		t.Fatal(err)
	}
	if !multip(s) {
		t.Error("MULTIP clear with two target ports")
	}
	// The golden identity data (no second port) is unchanged.
	if d.ident.Load().stdInquiry[6]&0x10 != 0 {
		t.Error("MULTIP leaked into the cached INQUIRY data")
	}
}
