package iscsi

import (
	"testing"
	"unsafe"
)

func TestBufPool(t *testing.T) {
	p := newBufPool()
	for _, tc := range []struct {
		n, wantCap int
	}{
		{1, 4096},
		{4096, 4096},
		{4097, 8192},
		{65536, 65536},
		{1 << 24, 1 << 24},
		{1<<24 + 1, 1<<24 + 1}, // above the classes: allocated as is
	} {
		for round := range 2 { // the second round may come from the pool
			b := p.get(tc.n)
			if len(b) != tc.n || cap(b) != tc.wantCap {
				t.Fatalf("get(%d) round %d: len %d cap %d, want cap %d", tc.n, round, len(b), cap(b), tc.wantCap)
			}
			b[0], b[len(b)-1] = 1, 2 // the whole length is usable
			p.put(b)
		}
	}
	// A buffer whose capacity is no class size is not pooled: it would
	// come back as a class-sized slice past the end of its array.
	odd := make([]byte, 100, 5000)
	p.put(odd)
	if b := p.get(4097); unsafe.SliceData(b) == unsafe.SliceData(odd) {
		t.Fatal("a 5000-byte buffer came back from the 8 KiB class")
	}
}

// TestBufPoolPutAllocatesNothing: the pool keeps a pointer, not a boxed
// slice.
func TestBufPoolPutAllocatesNothing(t *testing.T) {
	p := newBufPool()
	b := p.get(4096)
	if n := testing.AllocsPerRun(100, func() { p.put(b); b = p.get(4096) }); n > 0.5 {
		// Under -race sync.Pool drops some puts, and get allocates anew.
		t.Logf("%.2f allocs per put+get", n)
		if !raceDetector {
			t.Fatalf("%.2f allocs per put+get, want 0", n)
		}
	}
}
