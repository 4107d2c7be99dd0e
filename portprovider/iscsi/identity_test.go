package iscsi

import (
	"bytes"
	"strings"
	"testing"

	"github.com/costar-project/costar/scsi"
)

// nul pads s with NULs to n bytes.
func nul(s string, n int) string { return s + strings.Repeat("\x00", n-len(s)) }

// TestNexusIdentity: a logged-in session's I_T nexus carries the iSCSI
// identity byte for byte as VPD page 0x83 and READ FULL STATUS reported it
// when the LU still derived it from names (lu/testdata/ident).
func TestNexusIdentity(t *testing.T) {
	env := startServer(t, nil)
	in := dial(t, env.addr)
	in.login(testTarget)
	ss := env.fw.Sessions()
	if len(ss) != 1 {
		t.Fatalf("%d sessions", len(ss))
	}
	nx := ss[0].Nexus
	const port = testInitiator + ",i,0x800000000001"
	if nx.Protocol != scsi.ProtocolISCSI || nx.InitiatorName != testInitiator || nx.InitiatorPort != port ||
		nx.TargetName != testTarget || nx.TargetPort != testTarget+",t,0x0001" || nx.PortGroup != 1 {
		t.Errorf("nexus %+v", nx)
	}
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		// TransportID format 01b, NUL-terminated, padded to a multiple of 4.
		{"initiator port", nx.InitiatorPortID.AppendTo(nil), "\x45\x00\x00\x28" + nul(port, 40)},
		// Format 00b: every port of the initiator.
		{"initiator device", nx.InitiatorDeviceID.AppendTo(nil), "\x05\x00\x00\x18" + nul(testInitiator, 24)},
		// SCSI name string designators, protocol iSCSI with PIV.
		{"target port designator", nx.Designators.Port[0].Append(nil, nx.Protocol, nx.Designators.PIV, scsi.AssocTargetPort),
			"\x53\x98\x00\x20" + nul(testTarget+",t,0x0001", 32)},
		{"target designator", nx.Designators.Target[0].Append(nil, nx.Protocol, nx.Designators.PIV, scsi.AssocTargetDevice),
			"\x53\xa8\x00\x18" + nul(testTarget, 24)},
	} {
		if !bytes.Equal(tc.got, []byte(tc.want)) {
			t.Errorf("%s:\n got % x\nwant % x", tc.name, tc.got, []byte(tc.want))
		}
	}
	if len(nx.Designators.Port) != 1 || len(nx.Designators.Target) != 1 {
		t.Errorf("designators %+v", nx.Designators)
	}
}
