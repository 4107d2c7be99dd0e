// Package memstore is a backing store in memory with fault injection: the
// device server's unit tests use it to drive their error paths (EIO,
// ENOSPC, short writes, failed syncs) without a file system. It is a
// backing.Fencer; Peer gives a second node's handle on the same LU.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/costar-project/costar/lu/backing"
)

// ErrIO is the error injected for a failing read, write or sync (a medium
// error to the device server).
var ErrIO = errors.New("memstore: injected I/O error")

// Op is an operation faults can be injected into.
type Op int

// Operations.
const (
	OpRead Op = iota
	OpWrite
	OpDurableWrite // a write with durable set (only that part of it fails)
	OpSync
	OpDeallocate
	numOps
)

// Fault is what an operation does instead of succeeding.
type Fault struct {
	Err error // returned (ErrIO, or a wrapped backing sentinel such as backing.ErrNoSpace)
	// Short, for writes: how many bytes land before Err is returned.
	Short int
	// Sticky: the fault stays after it fired; otherwise it fires once.
	Sticky bool
}

// NoSpace is a fault that says the store is full.
func NoSpace() Fault {
	return Fault{Err: fmt.Errorf("%w: memstore: injected ENOSPC", backing.ErrNoSpace)}
}

// Store is an LU in memory. Peer returns a second handle on the same LU
// (another node sharing the store, for the fencing tests).
type Store struct {
	*state
	fence int64 // token this handle fenced with (Fence); under mu
}

// state is what the handles of one LU share.
type state struct {
	mu     sync.Mutex
	data   []byte
	mapped []bool // per block of blockSize: written since the last deallocate
	bs     int64
	caps   backing.Caps
	meta   *backing.Meta
	faults [numOps]*Fault
	syncs  int
	saves  int
	// fenceReads counts Fence and CheckFence calls (FenceReads).
	fenceReads int
	closed     bool
	// noWaitMiss: ReadAtNoWait reports a miss (SetNoWaitMiss).
	noWaitMiss bool
	// syncHook runs at the start of every Sync, outside s.mu (SetSyncHook).
	syncHook func()
}

// New returns a store of size bytes, tracking allocation in units of
// blockSize bytes.
func New(size uint64, blockSize uint32, caps backing.Caps) *Store {
	caps.MapKnown = true
	return &Store{state: &state{data: make([]byte, size), mapped: make([]bool, size/uint64(blockSize)), bs: int64(blockSize), caps: caps}}
}

// Peer returns another handle on the same LU, as a second node sharing the
// store sees it: same blocks and metadata, its own fencing token.
func (s *Store) Peer() *Store { return &Store{state: s.state} }

// Inject makes op fail as f says (nil: never).
func (s *Store) Inject(op Op, f *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = f
}

// Syncs is how many Sync calls succeeded.
func (s *Store) Syncs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs
}

// Saves is how many times the metadata was saved.
func (s *Store) Saves() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}

// fault returns op's fault error (and its short count), consuming a
// one-shot fault; s.mu is held.
func (s *Store) fault(op Op) (error, int) {
	f := s.faults[op]
	if f == nil {
		return nil, 0
	}
	if !f.Sticky {
		s.faults[op] = nil
	}
	return f.Err, f.Short
}

func (s *Store) check(p int, off int64) error {
	if off < 0 || off+int64(p) > int64(len(s.data)) {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// ReadAt implements backing.Store.
func (s *Store) ReadAt(p []byte, off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(len(p), off); err != nil {
		return err
	}
	if err, _ := s.fault(OpRead); err != nil {
		return err
	}
	copy(p, s.data[off:])
	return nil
}

// ReadAtNoWait implements backing.NoWaitReader: memory never waits,
// unless SetNoWaitMiss made every such read "not cached".
func (s *Store) ReadAtNoWait(p []byte, off int64) (bool, error) {
	s.mu.Lock()
	miss := s.noWaitMiss
	s.mu.Unlock()
	if miss {
		return false, nil
	}
	if err := s.ReadAt(p, off); err != nil {
		return false, err
	}
	return true, nil
}

// NoWait implements backing.NoWaitReader.
func (s *Store) NoWait() bool { return true }

// SetNoWaitMiss makes ReadAtNoWait report every read as one that would
// wait (a page-cache miss), so tests reach the device server's fallback.
func (s *Store) SetNoWaitMiss(miss bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noWaitMiss = miss
}

// WriteAt implements backing.Store.
func (s *Store) WriteAt(p []byte, off int64, durable bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.caps.ReadOnly {
		return fmt.Errorf("%w: memstore", backing.ErrReadOnly)
	}
	if err := s.check(len(p), off); err != nil {
		return err
	}
	err, short := s.fault(OpWrite)
	if err == nil && durable {
		err, short = s.fault(OpDurableWrite)
	}
	if err != nil {
		s.put(p[:min(short, len(p))], off)
		return err
	}
	s.put(p, off)
	return nil
}

func (s *Store) put(p []byte, off int64) {
	copy(s.data[off:], p)
	for b := off / s.bs; b < (off+int64(len(p))+s.bs-1)/s.bs; b++ {
		s.mapped[b] = true
	}
}

// SetSyncHook makes h run at the start of every Sync, before its fault is
// checked and outside the store's lock, so a test can hold a sync (to
// make callers overlap) or inject a fault into the next one; nil: none.
// Set it while no Sync runs.
func (s *Store) SetSyncHook(h func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncHook = h
}

// Sync implements backing.Store.
func (s *Store) Sync() error {
	s.mu.Lock()
	h := s.syncHook
	s.mu.Unlock()
	if h != nil {
		h()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err, _ := s.fault(OpSync); err != nil {
		return err
	}
	s.syncs++
	return nil
}

// Deallocate implements backing.Store: whole blocks are unmapped and
// zeroed, partial ones zeroed.
func (s *Store) Deallocate(off, n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(int(n), off); err != nil {
		return err
	}
	if err, _ := s.fault(OpDeallocate); err != nil {
		return err
	}
	clear(s.data[off : off+n])
	for b := (off + s.bs - 1) / s.bs; b < (off+n)/s.bs; b++ {
		s.mapped[b] = false
	}
	return nil
}

// WriteZeroes implements backing.Store.
func (s *Store) WriteZeroes(off, n int64) error {
	return s.WriteAt(make([]byte, n), off, false)
}

// Allocated implements backing.Store.
func (s *Store) Allocated(off, limit int64) (bool, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := off / s.bs
	st := s.mapped[b]
	end := b + 1
	for end*s.bs < limit && s.mapped[end] == st {
		end++
	}
	return st, min(end*s.bs, limit), nil
}

// Size implements backing.Store.
func (s *Store) Size() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(len(s.data))
}

// Resize implements backing.Store (grow only).
func (s *Store) Resize(_ context.Context, n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > uint64(len(s.data)) {
		s.data = append(s.data, make([]byte, n-uint64(len(s.data)))...)
		s.mapped = append(s.mapped, make([]bool, n/uint64(s.bs)-uint64(len(s.mapped)))...)
	}
	return nil
}

// Caps implements backing.Store.
func (s *Store) Caps() backing.Caps { return s.caps }

// LoadMeta implements backing.Store.
func (s *Store) LoadMeta() (*backing.Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.meta == nil {
		return nil, fmt.Errorf("%w: memstore", backing.ErrNoMeta)
	}
	return s.meta.Clone(), nil
}

// SaveMeta implements backing.Store. Like filestore's, it never lowers
// the recorded fencing token and refuses a fenced handle's save.
func (s *Store) SaveMeta(m *backing.Meta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var stored int64
	if s.meta != nil {
		stored = s.meta.FenceToken
	}
	if s.fence != 0 && stored > s.fence {
		return fmt.Errorf("%w: memstore holds token %d, this handle's is %d", backing.ErrFenced, stored, s.fence)
	}
	s.meta = m.Clone()
	s.meta.FenceToken = max(m.FenceToken, stored, s.fence)
	s.saves++
	return nil
}

// Fence implements backing.Fencer.
func (s *Store) Fence(token int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.meta == nil {
		return fmt.Errorf("%w: memstore", backing.ErrNoMeta)
	}
	if s.meta.FenceToken > token {
		return fmt.Errorf("%w: memstore holds token %d, this handle's is %d", backing.ErrFenced, s.meta.FenceToken, token)
	}
	s.meta.FenceToken = token
	s.fence = token
	s.fenceReads++
	return nil
}

// CheckFence implements backing.Fencer.
func (s *Store) CheckFence(token int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fenceReads++
	if s.meta != nil && s.meta.FenceToken > token {
		return fmt.Errorf("%w: memstore holds token %d, this handle's is %d", backing.ErrFenced, s.meta.FenceToken, token)
	}
	return nil
}

// FenceReads is how many times the fencing token was read (Fence and
// CheckFence, all handles): the device server's cache is seen through it.
func (s *Store) FenceReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fenceReads
}

// Close implements backing.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
