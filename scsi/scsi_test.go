package scsi

import (
	"bytes"
	"testing"
)

func TestSenseRoundTrip(t *testing.T) {
	for _, s := range []*Sense{
		NewSense(KeyUnitAttention, ASCPowerOnReset),
		NewSense(KeyMiscompare, ASCMiscompareDuringVerify).WithInfo(0x1234),
		IllegalRequest(ASCInvalidFieldInCDB, 2),
		IllegalRequest(ASCInvalidFieldInParameterList, 7),
		IllegalRequest(ASCLUNotSupported, -1),
	} {
		b := s.Bytes()
		if len(b) != FixedLen || b[0]&0x7f != 0x70 || b[7] != FixedLen-8 {
			t.Fatalf("%v: bad fixed-format header % x", s, b)
		}
		got, err := ParseSense(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Key != s.Key || got.ASC != s.ASC || (got.Info == nil) != (s.Info == nil) {
			t.Errorf("round trip: got %+v want %+v", got, s)
		}
		if s.Info != nil && (*got.Info != *s.Info || b[0]&0x80 == 0) {
			t.Errorf("INFORMATION/VALID lost: % x", b)
		}
	}
}

func TestSenseKeySpecific(t *testing.T) {
	b := IllegalRequest(ASCInvalidFieldInCDB, 2).Bytes()
	if !bytes.Equal(b[15:18], []byte{0xc0, 0, 2}) { // SKSV, C/D=CDB, byte 2
		t.Errorf("CDB field pointer % x", b[15:18])
	}
	b = IllegalRequest(ASCInvalidFieldInParameterList, 7).Bytes()
	if !bytes.Equal(b[15:18], []byte{0x80, 0, 7}) { // SKSV, C/D=parameter list
		t.Errorf("parameter list field pointer % x", b[15:18])
	}
	if b := IllegalRequest(ASCLUNotSupported, -1).Bytes(); b[15] != 0 {
		t.Errorf("no pointer wanted, got % x", b[15:18])
	}
}

func TestParseSenseErrors(t *testing.T) {
	for _, b := range [][]byte{nil, {0x70, 0, 5}, {0x72, 0}, {0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := ParseSense(b); err == nil {
			t.Errorf("ParseSense(% x) accepted", b)
		}
	}
	s, err := ParseSense([]byte{0x72, 0x06, 0x29, 0x00})
	if err != nil || s.Key != KeyUnitAttention || s.ASC != ASCPowerOnReset {
		t.Errorf("descriptor format: %+v %v", s, err)
	}
}

func TestStatusString(t *testing.T) {
	if StatusCheckCondition.String() != "CHECK CONDITION" || Status(0x99).String() != "status 0x99" {
		t.Error("Status.String")
	}
}
