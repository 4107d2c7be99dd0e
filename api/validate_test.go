package api

import (
	"strings"
	"testing"
)

func TestCanonicalDeviceID(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"iqn.1998-01.com.VMware:Host-1", "iqn.1998-01.com.vmware:host-1", true},
		{"iqn.x", "iqn.x", true},
		{"iqn.a b", "", false},
		{"iqn.a_b", "", false},
		{"iqn." + strings.Repeat("a", 219), "iqn." + strings.Repeat("a", 219), true},
		{"iqn." + strings.Repeat("a", 220), "", false},
		{"wwn.2100001b32aabbcc", "wwn.2100001B32AABBCC", true},
		{"wwn.2100001b32aabb", "", false},
		{"eui.0123456789abcdef", "eui.0123456789ABCDEF", true},
		{"eui.0123456789abcdeg", "", false},
		{"IQN.x", "", false},
		{"naa.600144f0", "", false},
		{"", "", false},
	} {
		got, ok := CanonicalDeviceID(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CanonicalDeviceID(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCanonicalISCSIName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"iqn.2026-11.org.Costar:T1", "iqn.2026-11.org.costar:t1", true},
		{"iqn.2026-11.o", "iqn.2026-11.o", true},
		{"iqn.2026-13.org.x", "", false},
		{"iqn.26-11.org.xyz", "", false},
		{"iqn.2026-11:org", "", false},
		{"iqn.2026-11.", "", false},
		{"iqn.2026-11.a/b", "", false},
		{"eui.0123456789abcdef", "eui.0123456789ABCDEF", true},
		{"eui.0123", "", false},
		{"foo.bar.baz.qux", "", false},
	} {
		got, ok := CanonicalISCSIName(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CanonicalISCSIName(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCanonicalPortal(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"192.0.2.1", "192.0.2.1:3260", true},
		{"192.0.2.1:3261", "192.0.2.1:3261", true},
		{"[2001:db8::1]:3260", "[2001:db8::1]:3260", true},
		{"[2001:db8::1]", "[2001:db8::1]:3260", true},
		{"2001:db8::1", "[2001:db8::1]:3260", true},
		{"localhost", "", false},
		{"192.0.2.1:0", "", false},
		{"192.0.2.1:70000", "", false},
		{"", "", false},
	} {
		got, err := CanonicalPortal(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("CanonicalPortal(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if got, err := CanonicalHostPort("192.0.2.1", 1812); err != nil || got != "192.0.2.1:1812" {
		t.Errorf("CanonicalHostPort: %q %v", got, err)
	}
}

func TestParseLUProp(t *testing.T) {
	for _, tc := range []struct {
		arg    string
		reason string // "" = accepted
		check  func(LUProps) bool
	}{
		{"alias=vm 1", "", func(p LUProps) bool { return *p.Alias == "vm 1" }},
		{"ALIAS=x", "", func(p LUProps) bool { return *p.Alias == "x" }},
		{"alias=" + strings.Repeat("a", 256), ReasonLength, nil},
		{"blk=4096", "", func(p LUProps) bool { return *p.BlockSize == 4096 }},
		{"blk=4k", ReasonFormat, nil},
		{"blk=256", ReasonBlockSize, nil},
		{"blk=131072", ReasonBlockSize, nil},
		{"guid=600144f0aabbccdd0000000000000001", "", func(p LUProps) bool { return p.GUID == "600144F0AABBCCDD0000000000000001" }},
		{"guid=500144f0aabbccdd0000000000000001", ReasonFormat, nil},
		{"guid=600144f0", ReasonLength, nil},
		{"host-id=c0a80101", "", func(p LUProps) bool { return p.HostID == "C0A80101" }},
		{"host-id=c0a8010", ReasonLength, nil},
		{"oui=00144f", "", func(p LUProps) bool { return p.OUI == "00144F" }},
		{"oui=00144g", ReasonFormat, nil},
		{"meta=/m", "", func(p LUProps) bool { return p.MetaFile == "/m" }},
		{"mgmt-url=", "", func(p LUProps) bool { return p.MgmtURL != nil && *p.MgmtURL == "" }},
		{"mgmt-url=http://x/?a=b", "", func(p LUProps) bool { return *p.MgmtURL == "http://x/?a=b" }},
		{"pid=" + strings.Repeat("p", 16), "", func(p LUProps) bool { return len(*p.PID) == 16 }},
		{"pid=" + strings.Repeat("p", 17), ReasonLength, nil},
		{"vid=12345678", "", func(p LUProps) bool { return *p.VID == "12345678" }},
		{"vid=123456789", ReasonLength, nil},
		{"serial=" + strings.Repeat("s", 253), ReasonLength, nil},
		{"wcd=TRUE", "", func(p LUProps) bool { return *p.WCD }},
		{"wp=false", "", func(p LUProps) bool { return !*p.WP }},
		{"wp=1", ReasonFormat, nil},
		{"thin=true", "", func(p LUProps) bool { return *p.Thin }},
		{"thin=yes", ReasonFormat, nil},
		{"preallocation=FULL", "", func(p LUProps) bool { return p.Preallocation == PreallocFull }},
		{"preallocation=falloc", "", func(p LUProps) bool { return p.Preallocation == PreallocFalloc }},
		{"preallocation=metadata", ReasonFormat, nil},
		{"soft-threshold=80", "", func(p LUProps) bool { return *p.SoftThreshold == 80 }},
		{"soft-threshold=101", ReasonFormat, nil},
		{"soft-threshold=-1", ReasonFormat, nil},
		{"qos-iops=2000", "", func(p LUProps) bool { return *p.QoSIOPS == 2000 }},
		{"QOS-MBPS=0", "", func(p LUProps) bool { return p.QoSMBps != nil && *p.QoSMBps == 0 }},
		{"qos-iops=-1", ReasonFormat, nil},
		{"qos-mbps=1.5", ReasonFormat, nil},
		{"qos-iops=1000000001", ReasonFormat, nil},
		{"wp", ReasonSpecifier, nil},
		{"wp=", ReasonSpecifier, nil},
		{"size=1", ReasonUnknown, nil},
	} {
		var p LUProps
		_, err := ParseLUProp(&p, tc.arg)
		pe, _ := AsPropError(err)
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%q: %v", tc.arg, err)
		case tc.reason == "" && !tc.check(p):
			t.Errorf("%q: parsed to %+v", tc.arg, p)
		case tc.reason != "" && (pe == nil || pe.Reason != tc.reason):
			t.Errorf("%q: error %v, want reason %q", tc.arg, err, tc.reason)
		case tc.reason == "" && p.Validate(false) != nil:
			t.Errorf("%q: parsed props do not validate: %v", tc.arg, p.Validate(false))
		}
	}
}

func TestValidateModify(t *testing.T) {
	a, v, blk := "x", "v", uint32(512)
	if err := (&LUProps{Alias: &a}).Validate(true); err != nil {
		t.Errorf("alias refused for modify: %v", err)
	}
	for _, p := range []LUProps{{VID: &v}, {BlockSize: &blk}, {Thin: new(bool)}, {Preallocation: "full"}, {GUID: "600144F0AABBCCDD0000000000000001"}, {OUI: "00144F"}} {
		if err := p.Validate(true); err == nil {
			t.Errorf("%+v accepted for modify", p)
		}
	}
	long := strings.Repeat("v", 9)
	if err := (&LUProps{VID: &long}).Validate(false); err == nil {
		t.Error("long vid accepted")
	}
}
