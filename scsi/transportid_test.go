package scsi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestTransportIDEncode(t *testing.T) {
	isid := [6]byte{0x00, 0x02, 0x3d, 0x00, 0x00, 0x01}
	tests := []struct {
		name string
		tid  TransportID
		want []byte
	}{
		{"iSCSI port", ISCSIPortTransportID("iqn.x", isid),
			append([]byte{0x45, 0, 0, 24}, "iqn.x,i,0x00023d000001\x00\x00"...)},
		{"iSCSI device, padded to 20", ISCSIDeviceTransportID("iqn.x"),
			append([]byte{0x05, 0, 0, 20}, "iqn.x"+strings.Repeat("\x00", 15)...)},
		{"iSCSI device, multiple of 4 gets a NUL", ISCSIDeviceTransportID(strings.Repeat("n", 20)),
			append([]byte{0x05, 0, 0, 24}, strings.Repeat("n", 20)+"\x00\x00\x00\x00"...)},
		{"FC", FCTransportID([8]byte{0x21, 0, 0, 0x1b, 0x32, 0xaa, 0xbb, 0xcc}),
			[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0x21, 0, 0, 0x1b, 0x32, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"SAS", SASTransportID([8]byte{0x50, 1, 2, 3, 4, 5, 6, 7}),
			[]byte{6, 0, 0, 0, 0x50, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.tid.AppendTo(nil)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("encoded % x\nwant    % x", got, tc.want)
			}
			back, n, err := ParseTransportID(append(got, 0xee)) // trailing byte left alone
			if err != nil || n != len(got) || !back.Equal(tc.tid) || !bytes.Equal(back.AppendTo(nil), got) {
				t.Fatalf("decode: %v %d %v", back, n, err)
			}
		})
	}
}

func TestTransportIDDecodeAndCompare(t *testing.T) {
	raw := func(b0 byte, s string, n int) []byte {
		b := make([]byte, 4+n)
		b[0] = b0
		binary.BigEndian.PutUint16(b[2:4], uint16(n))
		copy(b[4:], s)
		return b
	}
	port := ISCSIPortTransportID("iqn.2026-11.org.costar:a", [6]byte{0, 0xab, 0, 0xcd, 0, 0xef})
	tests := []struct {
		name string
		in   []byte
		want TransportID // zero: must be rejected
	}{
		{"upper-case ISID and extra padding", raw(0x45, "iqn.2026-11.org.costar:a,I,0X00AB00CD00EF", 64), port},
		{"other name case", raw(0x45, "IQN.2026-11.ORG.COSTAR:A,i,0x00ab00cd00ef", 48), port},
		{"device", raw(0x05, "iqn.2026-11.org.costar:a", 28), port.Device()},
		{"unknown protocol", raw(0x04, "x", 20), TransportID{}},
		{"format 10b", raw(0x85, "iqn.x", 20), TransportID{}},
		{"no NUL", raw(0x05, "iqn.xxxxxxxxxxxxxxxx", 16), TransportID{}},
		{"empty name", raw(0x05, "", 20), TransportID{}},
		{"no ISID", raw(0x45, "iqn.x", 20), TransportID{}},
		{"short ISID", raw(0x45, "iqn.x,i,0x1234", 20), TransportID{}},
		{"bad ISID digit", raw(0x45, "iqn.x,i,0x00000000000g", 24), TransportID{}},
		{"ISID without name", raw(0x45, ",i,0x000000000001", 20), TransportID{}},
		{"control character", raw(0x05, "iqn.\x01", 20), TransportID{}},
		{"name too long", raw(0x05, strings.Repeat("n", 224), 228), TransportID{}},
		{"length past the end", raw(0x05, "iqn.x", 20)[:20], TransportID{}},
		{"length under 4", raw(0x05, "", 0), TransportID{}},
		{"short header", []byte{5, 0, 0}, TransportID{}},
		{"FC format 01b", append([]byte{0x40}, make([]byte, 23)...), TransportID{}},
		{"FC short", make([]byte, 23), TransportID{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, n, err := ParseTransportID(tc.in)
			if tc.want.IsZero() {
				if !errors.Is(err, ErrBadTransportID) {
					t.Fatalf("accepted: %v", got)
				}
				return
			}
			if err != nil || n != len(tc.in) || !got.Equal(tc.want) {
				t.Fatalf("got %v %d %v, want %v", got, n, err, tc.want)
			}
		})
	}

	other := ISCSIPortTransportID("iqn.2026-11.org.costar:a", [6]byte{0, 0xab, 0, 0xcd, 0, 0xee})
	for _, c := range []struct {
		a, b TransportID
		eq   bool
	}{
		{port, other, false},
		{port, port.Device(), false},
		{port.Device(), other.Device(), true},
		{ISCSIDeviceTransportID("IQN.A"), ISCSIDeviceTransportID("iqn.a"), true},
		{FCTransportID([8]byte{1}), FCTransportID([8]byte{1}), true},
		{FCTransportID([8]byte{1}), FCTransportID([8]byte{2}), false},
		{FCTransportID([8]byte{1}).Device(), FCTransportID([8]byte{1}), true},
		{TransportID{}, TransportID{}, true},
		{TransportID{}, port, false},
	} {
		if got := c.a.Equal(c.b); got != c.eq {
			t.Errorf("%v Equal %v = %v", c.a, c.b, got)
		}
	}
	if isid, ok := port.ISID(); !ok || isid != [6]byte{0, 0xab, 0, 0xcd, 0, 0xef} || port.ISCSIName() != "iqn.2026-11.org.costar:a" {
		t.Errorf("accessors: %x %v %q", isid, ok, port.ISCSIName())
	}
	if _, ok := port.Device().ISID(); ok {
		t.Error("device TransportID has an ISID")
	}
	if port.String() != "iqn.2026-11.org.costar:a,i,0x00ab00cd00ef" || port.Protocol() != ProtocolISCSI {
		t.Errorf("String %q protocol %v", port, port.Protocol())
	}
}

func TestNameDesignator(t *testing.T) {
	d, ok := NameDesignator("abcd")
	if !ok || len(d.Value) != 8 || d.Value[4] != 0 {
		t.Errorf("abcd: %q", d.Value)
	}
	if _, ok := NameDesignator(strings.Repeat("x", 300)); ok {
		t.Error("over-long SCSI name accepted")
	}
	got := d.Append(nil, ProtocolISCSI, true, AssocTargetPort)
	if want := append([]byte{0x53, 0x98, 0, 8}, "abcd\x00\x00\x00\x00"...); !bytes.Equal(got, want) {
		t.Errorf("PIV: % x", got)
	}
	if got := d.Append(nil, ProtocolISCSI, false, AssocTargetDevice); got[0] != 0x03 || got[1] != 0x28 {
		t.Errorf("no PIV: % x", got[:2])
	}
}

// FuzzParseTransportID: decoding never panics, never claims more than it
// was given, and a decoded TransportID re-encodes to something that
// decodes to an equal one.
func FuzzParseTransportID(f *testing.F) {
	f.Add(ISCSIPortTransportID("iqn.x", [6]byte{1}).AppendTo(nil))
	f.Add(ISCSIDeviceTransportID("iqn.x").AppendTo(nil))
	f.Add(FCTransportID([8]byte{1}).AppendTo(nil))
	f.Add(SASTransportID([8]byte{1}).AppendTo(nil))
	f.Add([]byte{0x45, 0, 0, 8, 'a', ',', 'i', ',', '0', 'x', 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tid, n, err := ParseTransportID(b)
		if err != nil {
			return
		}
		if n < 4 || n > len(b) || tid.IsZero() {
			t.Fatalf("n %d of %d, %v", n, len(b), tid)
		}
		enc := tid.AppendTo(nil)
		back, m, err := ParseTransportID(enc)
		if err != nil || m != len(enc) || !back.Equal(tid) || !bytes.Equal(back.AppendTo(nil), enc) {
			t.Fatalf("re-decode of % x: %v %d %v", enc, back, m, err)
		}
		if d := tid.Device(); !d.Equal(d.Device()) {
			t.Fatalf("Device not idempotent: %v", d)
		}
	})
}
