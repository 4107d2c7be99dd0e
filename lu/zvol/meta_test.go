package zvol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/costar-project/costar/stmf"
)

func testGUID(t *testing.T) stmf.GUID {
	t.Helper()
	g, err := stmf.ParseGUID("600144F0C0A80101000067A1B2C30001")
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestMetaRoundTrip(t *testing.T) {
	g := testGUID(t)
	tests := []struct {
		name string
		m    Meta
	}{
		{"minimal", Meta{GUID: g, Zvol: "tank/v", BlockSize: 512}},
		{"full", Meta{GUID: g, Zvol: "tank/vms/vm-100-disk-0", ZvolGUID: 18446744073709551615, BlockSize: 4096,
			VendorID: "SUN", ProductID: "COMSTAR", Serial: "SER-1", Alias: "db \"prod\"\t\n€", MgmtURL: "https://x/y?a=b&c=<d>",
			WCD: true, WP: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(s, "\t\n") {
				t.Errorf("encoded metadata has a tab or newline (zfs get output would split): %q", s)
			}
			got, err := DecodeMeta(s)
			if err != nil {
				t.Fatalf("DecodeMeta(%s): %v", s, err)
			}
			if !reflect.DeepEqual(*got, tt.m) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *got, tt.m)
			}
		})
	}
}

func TestMetaWireFormat(t *testing.T) {
	m := Meta{GUID: testGUID(t), Zvol: "tank/v1", ZvolGUID: 42, BlockSize: 512, VendorID: "COSTAR", ProductID: "COMSTAR", Alias: "a"}
	s, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"guid":"600144F0C0A80101000067A1B2C30001","zvol":"tank/v1","zvol_guid":"42","blk":512,"vid":"COSTAR","pid":"COMSTAR","serial":"","alias":"a","mgmt_url":"","wcd":false,"wp":false}`
	if s != want {
		t.Errorf("Encode:\n got %s\nwant %s", s, want)
	}
}

func TestMetaKeepsUnknownKeys(t *testing.T) {
	in := `{"v":1,"guid":"600144f0c0a80101000067a1b2c30001","zvol":"tank/v1","blk":512,"vid":"","pid":"","serial":"","alias":"","mgmt_url":"","wcd":false,"wp":false,"future":{"x":[1,2]},"zz":"y"}`
	m, err := DecodeMeta(in)
	if err != nil {
		t.Fatal(err)
	}
	m.Alias = "changed"
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatal(err)
	}
	if string(obj["future"]) != `{"x":[1,2]}` || string(obj["zz"]) != `"y"` || string(obj["alias"]) != `"changed"` {
		t.Errorf("unknown keys not kept or alias not changed: %s", out)
	}
	c := m.Clone()
	c.unknown["future"][0] = 'X'
	if string(m.unknown["future"]) != `{"x":[1,2]}` {
		t.Error("Clone shares unknown values with the original")
	}
}

func TestDecodeMetaRejects(t *testing.T) {
	good := map[string]any{"v": 1, "guid": "600144F0C0A80101000067A1B2C30001", "zvol": "tank/v", "blk": 512}
	with := func(k string, v any) string {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name, in string
		newer    bool
	}{
		{"empty", "", false},
		{"not json", "COSTARLU", false},
		{"trailing garbage", with("v", 1) + "x", false},
		{"array", "[1]", false},
		{"newer version", with("v", 2), true},
		{"version 0", with("v", 0), false},
		{"version string", with("v", "1"), false},
		{"no guid", with("guid", nil), false},
		{"bad guid", with("guid", "xyz"), false},
		{"zero guid", with("guid", "00000000000000000000000000000000"), false},
		{"no zvol", with("zvol", nil), false},
		{"bad zvol", with("zvol", "tank"), false},
		{"no blk", with("blk", nil), false},
		{"bad blk", with("blk", 1000), false},
		{"blk too big", with("blk", 131072), false},
		{"negative blk", with("blk", -512), false},
		{"bad zvol_guid", with("zvol_guid", "x"), false},
		{"too long", strings.Repeat(" ", MaxPropLen+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMeta(tt.in)
			if err == nil {
				t.Fatalf("DecodeMeta(%q) = %+v, want an error", tt.in, m)
			}
			if errors.Is(err, ErrNewerFormat) != tt.newer {
				t.Errorf("error %v: ErrNewerFormat = %v, want %v", err, !tt.newer, tt.newer)
			}
		})
	}
	if _, err := DecodeMeta(with("v", 1)); err != nil {
		t.Fatalf("the base case must decode: %v", err)
	}
}

func TestEncodeMetaRejects(t *testing.T) {
	g := testGUID(t)
	tests := []struct {
		name string
		m    Meta
	}{
		{"no guid", Meta{Zvol: "tank/v", BlockSize: 512}},
		{"no zvol", Meta{GUID: g, BlockSize: 512}},
		{"bad block size", Meta{GUID: g, Zvol: "tank/v", BlockSize: 513}},
		{"invalid utf-8", Meta{GUID: g, Zvol: "tank/v", BlockSize: 512, Alias: "\xff"}},
		{"too large", Meta{GUID: g, Zvol: "tank/v", BlockSize: 512, Alias: strings.Repeat("\x01", 1024), MgmtURL: strings.Repeat("\x01", 1024)}},
	}
	for _, tt := range tests {
		if s, err := tt.m.Encode(); err == nil {
			t.Errorf("%s: Encode = %q, want an error", tt.name, s)
		}
	}
}

func TestPRRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 100, 16 << 10} {
		state := bytes.Repeat([]byte("iqn.1998-01.com.vmware:esx1\x00\x01\x02"), n/30+1)[:n]
		s, err := EncodePR(state)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if len(s) > MaxPropLen || strings.ContainsAny(s, "\t\n") {
			t.Fatalf("%d bytes: bad property value %q", n, s)
		}
		got, err := DecodePR(s)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, state) {
			t.Fatalf("%d bytes: round trip differs", n)
		}
	}
}

func TestPRLimits(t *testing.T) {
	// Incompressible state larger than a property: refused with ErrPRTooLarge.
	big := make([]byte, 8000)
	x := uint32(1)
	for i := range big {
		x = x*1664525 + 1013904223
		big[i] = byte(x >> 24)
	}
	if _, err := EncodePR(big); !errors.Is(err, ErrPRTooLarge) {
		t.Errorf("EncodePR(8000 random bytes) = %v, want ErrPRTooLarge", err)
	}
	if _, err := EncodePR(make([]byte, maxPRState+1)); err == nil {
		t.Error("EncodePR accepted state above maxPRState")
	}
	for _, bad := range []string{"", "2:AAAA", "1:!!!", "1:AAAA", "x"} {
		if _, err := DecodePR(bad); err == nil {
			t.Errorf("DecodePR(%q) succeeded", bad)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	m := Meta{GUID: stmf.GUID{0x60, 1}, Zvol: "tank/v", BlockSize: 512}
	s, _ := m.Encode()
	f.Add(s)
	f.Add(`{"v":1}`)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := DecodeMeta(s)
		if err != nil {
			return
		}
		out, err := m.Encode()
		if err != nil {
			if strings.Contains(err.Error(), "UTF-8") || strings.Contains(err.Error(), "more than a ZFS user property") {
				return
			}
			t.Fatalf("decoded %q but cannot encode it again: %v", s, err)
		}
		m2, err := DecodeMeta(out)
		if err != nil || m2.GUID != m.GUID || m2.Zvol != m.Zvol || m2.BlockSize != m.BlockSize {
			t.Fatalf("re-decode of %q: %+v, %v", out, m2, err)
		}
	})
}

func FuzzDecodePR(f *testing.F) {
	s, _ := EncodePR([]byte("state"))
	f.Add(s)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodePR(s)
		if err == nil && len(b) > maxPRState {
			t.Fatalf("DecodePR returned %d bytes", len(b))
		}
	})
}
