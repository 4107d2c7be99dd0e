package iscsi

import (
	"math/bits"
	"sync"
	"unsafe"
)

// bufPool hands out write buffers in power-of-two size classes from 4 KiB
// to 16 MiB; larger requests are allocated directly.
type bufPool struct {
	classes [numClasses]sync.Pool
}

const (
	minClassShift = 12 // 4 KiB
	numClasses    = 13 // up to 16 MiB
)

func newBufPool() *bufPool { return &bufPool{} }

func classOf(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// get returns a buffer of length n (contents undefined).
func (p *bufPool) get(n int) []byte {
	c := classOf(n)
	if c >= numClasses {
		return make([]byte, n)
	}
	if v := p.classes[c].Get(); v != nil {
		return unsafe.Slice(v.(*byte), 1<<(c+minClassShift))[:n]
	}
	return make([]byte, n, 1<<(c+minClassShift))
}

// put returns a buffer obtained from get.
func (p *bufPool) put(b []byte) {
	c := classOf(cap(b))
	if c >= numClasses || cap(b) != 1<<(c+minClassShift) {
		return
	}
	// The pool keeps a pointer to the first byte (it keeps the whole
	// array alive): boxing the slice itself would allocate on every put.
	p.classes[c].Put(unsafe.SliceData(b))
}
