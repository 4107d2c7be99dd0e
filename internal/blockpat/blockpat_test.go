package blockpat

import "testing"

func TestFillParse(t *testing.T) {
	good := make([]byte, 512)
	Fill(good, 77, 9, 3)
	torn := append([]byte(nil), good...)
	copy(torn[256:], make([]byte, 256)) // second half from an older (zero) block
	flipped := append([]byte(nil), good...)
	flipped[100] ^= 1
	for _, tc := range []struct {
		name    string
		b       []byte
		lba     uint64
		seq     uint64
		verdict Verdict
	}{
		{"written", good, 77, 9, Valid},
		{"zero", make([]byte, 512), 5, 0, Valid},
		{"torn", torn, 77, 0, Torn},
		{"bit flip", flipped, 77, 0, Torn},
		{"other LBA", good, 78, 0, Foreign},
	} {
		seq, v := Parse(tc.b, tc.lba)
		if seq != tc.seq || v != tc.verdict {
			t.Errorf("%s: Parse = %d, %v; want %d, %v", tc.name, seq, v, tc.seq, tc.verdict)
		}
	}
}

func TestDecode(t *testing.T) {
	b := make([]byte, 512)
	Fill(b, 12, 34, 5)
	if lba, seq, ok := Decode(b); !ok || lba != 12 || seq != 34 {
		t.Fatalf("Decode = %d %d %v", lba, seq, ok)
	}
	b[40] ^= 0xff
	if _, _, ok := Decode(b); ok {
		t.Fatal("Decode accepted a damaged block")
	}
	if _, _, ok := Decode(make([]byte, 512)); ok {
		t.Fatal("Decode accepted a zero block")
	}
	if _, _, ok := Decode(make([]byte, 8)); ok {
		t.Fatal("Decode accepted a short block")
	}
}
