package lu

import (
	"math/bits"
	"sync"
)

// Size classes of the read buffer pool: powers of two from 4 KiB to the
// maximum transfer size.
const (
	minBufShift = 12 // 4 KiB
	maxBufShift = 23 // 8 MiB (maxTransferBytes)
	numClasses  = maxBufShift - minBufShift + 1
)

// bufPool hands out read buffers from size-classed sync.Pools. A buffer
// goes back through its release func (stmf.Result.Release), which is
// bound once when the buffer is first made, so a pooled read allocates
// nothing here.
type bufPool struct {
	classes [numClasses]sync.Pool
}

type pooledBuf struct {
	b       []byte
	pool    *bufPool
	class   int // -1: not pooled
	release func()
}

// get returns a buffer of at least n bytes (n > 0).
func (p *bufPool) get(n int) *pooledBuf {
	c := sizeClass(n)
	if c < 0 {
		pb := &pooledBuf{b: make([]byte, n), class: -1}
		pb.release = func() {}
		return pb
	}
	if v := p.classes[c].Get(); v != nil {
		return v.(*pooledBuf)
	}
	pb := &pooledBuf{b: make([]byte, 1<<(c+minBufShift)), pool: p, class: c}
	pb.release = pb.put
	return pb
}

func (pb *pooledBuf) put() {
	if pb.class >= 0 {
		pb.pool.classes[pb.class].Put(pb)
	}
}

// sizeClass returns the class whose buffers hold n bytes, or -1 when n is
// larger than the largest class.
func sizeClass(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	c := bits.Len(uint(n-1)) - minBufShift
	if c >= numClasses {
		return -1
	}
	return c
}
