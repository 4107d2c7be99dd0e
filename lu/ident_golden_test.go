package lu

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Golden bytes of what an iSCSI I_T nexus sees of the LU's identity: VPD
// page 0x83 and PERSISTENT RESERVE IN READ FULL STATUS, and the persisted
// PR state (APTPL) these registrations produce. They were captured from
// the code before nexus identity became protocol-neutral; identity is now
// supplied by the port provider and must answer byte for byte the same, and
// state persisted by earlier releases must still load.
// COSTAR_UPDATE_GOLDEN=1 rewrites the files (only ever from known-good code).

const goldenDir = "testdata/ident"

func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if os.Getenv("COSTAR_UPDATE_GOLDEN") == "1" {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(hex.Dump(got)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return undump(t, string(b))
}

// undump reads hex.Dump output back.
func undump(t *testing.T, s string) []byte {
	t.Helper()
	var out []byte
	for _, line := range strings.Split(s, "\n") {
		if len(line) < 10 {
			continue
		}
		line = line[10:] // offset
		if i := strings.Index(line, "|"); i >= 0 {
			line = line[:i]
		}
		b, err := hex.DecodeString(strings.ReplaceAll(line, " ", ""))
		if err != nil {
			t.Fatalf("golden file: %v", err)
		}
		out = append(out, b...)
	}
	return out
}

// goldenScenario registers, through iSCSI-shaped nexuses, one initiator
// port per port, an ALL_TG_PT registrant with a mixed-case name, SPEC_I_PT
// TransportIDs of both formats (upper-case ISID digits) and a reservation.
func goldenScenario(t *testing.T) (*prEnv, *stmf.Session) {
	e := newPREnv(t)
	a := e.session(0, prInitA, 0x023d000001)
	b := e.session(1, strings.ToUpper(prInitB[:4])+prInitB[4:], 0x400001370000)
	e.clearUAs(a, b)
	e.mustProut(a, scsi.PROutRegister, 0, 0, 0xaa, pfAPTPL)
	e.mustProut(b, scsi.PROutRegister, 0, 0, 0xbb, pfAPTPL|pfAllTgPt)
	c := e.session(0, prInitC, 3)
	// Format 01b with upper-case ISID digits and more padding than needed:
	// READ FULL STATUS reports it re-encoded.
	tidD := rawTID(0x45, "iqn.2026-11.org.costar:init-d,i,0x00AbCdEf0102", 64)
	tidE := rawTID(0x05, "iqn.2026-11.org.costar:init-e", 32)
	e.mustProut(c, scsi.PROutRegister, 0, 0, 0xcc, pfAPTPL|pfSpecIPT, tidD, tidE)
	e.mustProut(a, scsi.PROutReserve, prTypeWE, 0xaa, 0, 0)
	return e, a
}

func TestGoldenISCSIIdentity(t *testing.T) {
	e, a := goldenScenario(t)
	vpd := e.run(a, inquiryCDB(true, vpdDeviceID, 1024), nil)
	expectGood(t, "VPD 0x83", vpd)
	clear(vpd.data[8:24]) // the LU's NAA designator: a fresh GUID each run
	if want := golden(t, "vpd83.hex", vpd.data); string(vpd.data) != string(want) {
		t.Errorf("VPD 0x83\n got % x\nwant % x", vpd.data, want)
	}
	fs := e.run(a, prinCDB(scsi.PRInReadFullStatus, 8192), nil)
	expectGood(t, "READ FULL STATUS", fs)
	wantFS := golden(t, "fullstatus.hex", fs.data)
	if string(fs.data) != string(wantFS) {
		t.Errorf("READ FULL STATUS\n got % x\nwant % x", fs.data, wantFS)
	}
	enc, err := encodePR(e.d.resv.pr)
	if err != nil {
		t.Fatal(err)
	}
	wantPR := golden(t, "pr_v1.hex", enc)
	if string(enc) != string(wantPR) {
		t.Errorf("persisted PR state\n got % x\nwant % x", enc, wantPR)
	}

	// State persisted by earlier releases loads into the same answers.
	e2 := newPREnv(t)
	e2.d.setupReservations(&backing.Meta{GUID: e2.d.guid, PR: wantPR})
	a2 := e2.session(0, prInitA, 0x023d000001)
	if got := e2.run(a2, prinCDB(scsi.PRInReadFullStatus, 8192), nil); string(got.data) != string(wantFS) {
		t.Errorf("READ FULL STATUS after loading the golden state\n got % x\nwant % x", got.data, wantFS)
	}
	expectConflict(t, "write from a non-holder after loading", e2.run(e2.session(1, prInitC, 3), write10CDB, block512))
	expectGood(t, "write from the holder after loading", e2.run(a2, write10CDB, block512))
}

// rawTID builds a TransportID by hand: header byte, NUL-padded string.
func rawTID(b0 byte, s string, n int) []byte {
	b := make([]byte, 4+n)
	b[0], b[3] = b0, byte(n)
	copy(b[4:], s)
	return b
}

// iscsiPortSpec is a target port as the iSCSI port provider registers it:
// "<target>,t,0x<TPGT>" in ALUA group TPGT, SCSI name string designators
// for the port and the target with protocol iSCSI and PIV.
func iscsiPortSpec(target string, tpgt uint16) stmf.PortSpec {
	name := fmt.Sprintf("%s,t,0x%04x", target, tpgt)
	pd, _ := scsi.NameDesignator(name)
	td, _ := scsi.NameDesignator(target)
	return stmf.PortSpec{Protocol: scsi.ProtocolISCSI, TargetName: target, Name: name, Group: tpgt,
		Designators: stmf.PortDesignators{PIV: true, Port: []scsi.Designator{pd}, Target: []scsi.Designator{td}}}
}

// iscsiInitiator is an initiator port as the iSCSI port provider opens its
// nexus: name and ISID.
func iscsiInitiator(name string, isid uint64) stmf.Initiator {
	var id [6]byte
	for i := range id {
		id[i] = byte(isid >> (8 * (5 - i)))
	}
	return stmf.Initiator{Name: name, PortName: fmt.Sprintf("%s,i,0x%012x", name, isid),
		PortID: scsi.ISCSIPortTransportID(name, id), DeviceID: scsi.ISCSIDeviceTransportID(name)}
}

// tidBytes is the encoded iSCSI TransportID of a port (isid 12 hex
// digits) or, with isid "", of the initiator device.
func tidBytes(name, isid string) []byte {
	if isid == "" {
		return scsi.ISCSIDeviceTransportID(name).AppendTo(nil)
	}
	var id [6]byte
	if _, err := hex.Decode(id[:], []byte(isid)); err != nil {
		panic(err)
	}
	return scsi.ISCSIPortTransportID(name, id).AppendTo(nil)
}

// TestFCNexusReservations: the reservation code works on TransportIDs
// alone: FC initiator ports register, reserve and conflict, READ FULL
// STATUS reports their 24-byte TransportIDs, and the state persists (as
// version 2) and loads back.
func TestFCNexusReservations(t *testing.T) {
	e := newPREnv(t)
	p, err := e.fw.RegisterPort(stmf.PortSpec{Protocol: scsi.ProtocolFC, TargetName: "wwn.2000001b32aabbcc",
		Name: "wwn.2100001b32aabbcc", Group: stmf.DefaultPortGroup})
	if err != nil {
		t.Fatal(err)
	}
	open := func(wwpn byte) *stmf.Session {
		id := scsi.FCTransportID([8]byte{0x21, 0, 0, 0x1b, 0x32, 0, 0, wwpn})
		s, err := p.OpenSession(stmf.Initiator{Name: id.String(), PortName: id.String(), PortID: id, DeviceID: id})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	a, b := open(1), open(2)
	e.mustProut(a, scsi.PROutRegister, 0, 0, 0xa, pfAPTPL)
	e.mustProut(b, scsi.PROutRegister, 0, 0, 0xb, pfAPTPL)
	e.mustProut(a, scsi.PROutReserve, prTypeWE, 0xa, 0, 0)
	expectGood(t, "holder writes", e.run(a, write10CDB, block512))
	expectConflict(t, "other port writes", e.run(b, write10CDB, block512))
	// An iSCSI TransportID from an FC nexus is refused.
	expectSense(t, "SPEC_I_PT with an iSCSI TransportID", e.prout(open(3), scsi.PROutRegister, 0, 0, 0xc, pfSpecIPT,
		tidBytes(prInitA, "")), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInParameterList)

	fs := e.run(a, prinCDB(scsi.PRInReadFullStatus, 8192), nil)
	expectGood(t, "READ FULL STATUS", fs)
	if len(fs.data) != 8+2*(24+24) || fs.data[8+20+3] != 24 || fs.data[8+24+8] != 0x21 || fs.data[8+24+15] != 1 {
		t.Fatalf("READ FULL STATUS % x", fs.data)
	}
	enc, err := encodePR(e.d.resv.pr)
	if err != nil || enc[0] != prPersistVersion2 {
		t.Fatalf("encoded % x %v", enc, err)
	}
	q, err := decodePR(enc)
	if err != nil || len(q.regs) != 2 || q.holder != q.regs[0] || !q.regs[1].tid.Equal(b.Nexus.InitiatorPortID) {
		t.Fatalf("decoded %+v %v", q, err)
	}
	bad := append([]byte(nil), enc...)
	bad[11+13] = 0x04 // the first TransportID's protocol: SRP, unknown
	if _, err := decodePR(bad); err == nil {
		t.Fatal("bad TransportID in persisted state accepted")
	}
}
