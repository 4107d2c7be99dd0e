package filestore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeSlot: a metadata slot read from disk is untrusted; decoding
// never panics, and what decodes re-encodes to a slot that decodes the
// same.
func FuzzDecodeSlot(f *testing.F) {
	for _, name := range []string{"header-v1.img", "sidecar-v1.meta"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:metaSlotSize])
		f.Add(b[metaSlotSize:])
	}
	f.Fuzz(func(t *testing.T, slot []byte) {
		m, gen, st, err := decodeSlot(slot)
		if st != slotValid {
			return
		}
		if err != nil || m == nil {
			t.Fatalf("valid slot with error %v", err)
		}
		img, err := m.encodeSlot(gen)
		if err != nil {
			return // too large once the unknown tags are written back
		}
		m2, gen2, st2, err := decodeSlot(img)
		if st2 != slotValid || gen2 != gen || err != nil {
			t.Fatalf("re-encoded slot: state %v gen %d err %v", st2, gen2, err)
		}
		img2, _ := m2.encodeSlot(gen2)
		if !bytes.Equal(img, img2) {
			t.Fatal("re-encoding is not stable")
		}
	})
}
