package integration

import (
	"testing"
)

func TestFirstNAA(t *testing.T) {
	naa := []byte{0x60, 0x01, 0x44, 0xf0, 1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 9}
	page := func(descs ...[]byte) []byte {
		var body []byte
		for _, d := range descs {
			body = append(body, d...)
		}
		return append([]byte{0x00, 0x83, byte(len(body) >> 8), byte(len(body))}, body...)
	}
	desc := func(assocType byte, id []byte) []byte {
		return append([]byte{0x01, assocType, 0x00, byte(len(id))}, id...)
	}
	tests := []struct {
		name    string
		page    []byte
		want    string
		wantErr bool
	}{
		{"naa only", page(desc(0x03, naa)), "600144f00102030400000506070800" + "09", false},
		{"vendor id first", page(desc(0x01, []byte("COSTAR  x")), desc(0x03, naa)), "600144f0010203040000050607080009", false},
		{"target-port NAA is skipped", page(desc(0x13, []byte{0x61, 1}), desc(0x03, naa)), "600144f0010203040000050607080009", false},
		{"no NAA", page(desc(0x01, []byte("abc"))), "", true},
		{"wrong page", []byte{0, 0x80, 0, 0}, "", true},
		{"short", []byte{0, 0x83}, "", true},
		{"page length beyond data", []byte{0, 0x83, 0, 40, 1, 3, 0, 16}, "", true},
		{"designator overruns page", []byte{0, 0x83, 0, 6, 1, 3, 0, 16, 0x60, 1}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := firstNAA(tc.page)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNAAFromInqOutput(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want string
		ok   bool
	}{
		{"binary up to NUL", "DEVICE DESIGNATOR #0\nDesignator Type:(3) NAA\nDesignator:[`\x01D\xf0ab]\nX", "`\x01D\xf0ab", true},
		{"no NAA", "Designator Type:(1) T10_VENDORT_ID\nDesignator:[IET]\n", "", false},
		{"unterminated", "Designator Type:(3) NAA\nDesignator:[`\x01", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := naaFromInqOutput([]byte(tc.out))
			if ok != tc.ok || string(got) != tc.want {
				t.Errorf("got %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestKeyValues(t *testing.T) {
	kv := keyValues("Total size:1073741824\nVersion Descriptor:04c0 SBC-3\nVersion Descriptor:0960 iSCSI\nno colon\nVendor:IET     \n")
	want := map[string]string{"Total size": "1073741824", "Version Descriptor": "04c0 SBC-3", "Vendor": "IET"}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}
	if len(kv) != len(want) {
		t.Errorf("got %d keys %v, want %d", len(kv), kv, len(want))
	}
}
