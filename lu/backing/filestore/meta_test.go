package filestore

import (
	"bytes"
	"testing"

	"github.com/costar-project/costar/lu/backing"
)

func TestUnknownTagsPreserved(t *testing.T) {
	m := &metadata{Meta: backing.Meta{GUID: [16]byte{0x60, 1}, Size: 4096, BlockSize: 512,
		Unknown: []backing.Field{{Tag: 999, Val: []byte("future")}}}, DataOffset: headerDataOffset}
	img, err := m.encodeSlot(7)
	if err != nil {
		t.Fatal(err)
	}
	slot := make([]byte, metaSlotSize)
	copy(slot, img)
	got, gen, st, err := decodeSlot(slot)
	if err != nil || st != slotValid || gen != 7 {
		t.Fatalf("decode: state %v gen %d err %v", st, gen, err)
	}
	if len(got.Unknown) != 1 || got.Unknown[0].Tag != 999 || string(got.Unknown[0].Val) != "future" {
		t.Fatalf("unknown tags %+v", got.Unknown)
	}
}

func TestDecodeSlotRejects(t *testing.T) {
	good := &metadata{Meta: backing.Meta{GUID: [16]byte{0x60, 1}, Size: 4096, BlockSize: 512}, DataOffset: headerDataOffset}
	img, err := good.encodeSlot(1)
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte)) []byte {
		b := make([]byte, metaSlotSize)
		copy(b, img)
		f(b)
		return b
	}
	tests := []struct {
		name string
		slot []byte
		want slotState
	}{
		{"empty", make([]byte, metaSlotSize), slotEmpty},
		{"valid", mutate(func([]byte) {}), slotValid},
		{"newer version", mutate(func(b []byte) { b[9] = 9 }), slotNewer},
		{"payload length overruns", mutate(func(b []byte) { b[12] = 0xff }), slotCorrupt},
		{"checksum", mutate(func(b []byte) { b[40] ^= 1 }), slotCorrupt},
		{"generation changed", mutate(func(b []byte) { b[23] ^= 1 }), slotCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, st, _ := decodeSlot(tc.slot)
			if st != tc.want {
				t.Fatalf("state %v, want %v", st, tc.want)
			}
		})
	}
}

func TestThickHasNoThinTags(t *testing.T) {
	img, err := (&metadata{Meta: backing.Meta{GUID: [16]byte{0x60, 2}, Size: 1 << 20, BlockSize: 512}}).encodeSlot(1)
	if err != nil {
		t.Fatal(err)
	}
	m, _, st, err := decodeSlot(img)
	if st != slotValid || m.Thin || m.SoftThreshold != 0 || len(m.Unknown) != 0 {
		t.Fatalf("thick round trip: %v %+v", err, m)
	}
	if bytes.Contains(img[metaHeaderLen:], []byte{0, tagThin}) {
		t.Error("thick metadata carries a thin tag")
	}
}

func TestThinMetadataTags(t *testing.T) {
	g := [16]byte{0x60, 1}
	base := func() []byte {
		var b []byte
		b = appendTLV(b, tagGUID, g[:])
		b = appendTLV(b, tagSize, u64b(1<<20))
		return appendTLV(b, tagBlockSize, u32b(512))
	}
	tests := []struct {
		name    string
		extra   []byte
		thin    bool
		soft    uint8
		wantErr bool
	}{
		{"thin", appendTLV(nil, tagThin, []byte{1}), true, 0, false},
		{"thin and threshold", append(appendTLV(nil, tagThin, []byte{1}), appendTLV(nil, tagSoftThreshold, []byte{75})...), true, 75, false},
		{"thin tag 0", appendTLV(nil, tagThin, []byte{0}), false, 0, false},
		{"thin tag too long", appendTLV(nil, tagThin, []byte{1, 0}), false, 0, true},
		{"threshold over 100", appendTLV(nil, tagSoftThreshold, []byte{200}), false, 0, true},
		{"threshold empty", appendTLV(nil, tagSoftThreshold, nil), false, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodePayload(append(base(), tc.extra...))
			if tc.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil || m.Thin != tc.thin || m.SoftThreshold != tc.soft {
				t.Fatalf("got %+v, %v", m, err)
			}
		})
	}
}
