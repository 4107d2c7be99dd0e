package main

import (
	"fmt"
	"github.com/costar-project/costar/internal/blockpat"
	"math/rand/v2"
	"sync"
)

// model is what every block of the tested region must hold.
//
// A block's value is the sequence number of the last acknowledged write
// to it (0: never written). The generator never has two commands in
// flight on one block (extents are locked), so an acknowledged write
// supersedes every earlier one exactly. A write whose outcome is unknown
// (aborted, timed out, connection lost, error status) may or may not have
// reached the medium, and may still land later; its blocks are
// quarantined: both values are accepted from then on and the block is
// never written again, so a late landing cannot be mistaken for a lost
// write.
type model struct {
	mu        sync.Mutex
	blocks    uint64
	stable    []uint64
	busy      []bool
	uncertain map[uint64][]uint64 // quarantined blocks: other values they may hold
}

func newModel(blocks uint64) *model {
	return &model{blocks: blocks, stable: make([]uint64, blocks), busy: make([]bool, blocks), uncertain: map[uint64][]uint64{}}
}

// maxLockTries bounds the search for a free extent.
const maxLockTries = 64

// lock picks a free extent of n blocks (for a write: with no quarantined
// block) at random and marks it busy. ok is false when none was found in
// maxLockTries attempts.
func (m *model) lock(r *rand.Rand, n uint64, write bool) (lba uint64, ok bool) {
	if n == 0 || n > m.blocks {
		return 0, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
outer:
	for try := 0; try < maxLockTries; try++ {
		lba = r.Uint64N(m.blocks - n + 1)
		for b := lba; b < lba+n; b++ {
			if m.busy[b] {
				continue outer
			}
			if write {
				if _, q := m.uncertain[b]; q {
					continue outer
				}
			}
		}
		for b := lba; b < lba+n; b++ {
			m.busy[b] = true
		}
		return lba, true
	}
	return 0, false
}

// lockRange marks [lba, lba+n) busy if it is free (the final read pass).
func (m *model) lockRange(lba, n uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for b := lba; b < lba+n; b++ {
		if m.busy[b] {
			return false
		}
	}
	for b := lba; b < lba+n; b++ {
		m.busy[b] = true
	}
	return true
}

// writeAcked records an acknowledged write and unlocks its extent.
func (m *model) writeAcked(lba, n, seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for b := lba; b < lba+n; b++ {
		m.stable[b] = seq
		m.busy[b] = false
	}
}

// writeUnknown quarantines the extent of a write whose outcome is
// unknown and unlocks it.
func (m *model) writeUnknown(lba, n, seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for b := lba; b < lba+n; b++ {
		m.uncertain[b] = append(m.uncertain[b], seq)
		m.busy[b] = false
	}
}

// unlock releases an extent without changing what it holds (reads, and
// writes the target certainly did not execute).
func (m *model) unlock(lba, n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for b := lba; b < lba+n; b++ {
		m.busy[b] = false
	}
}

// quarantined is the number of blocks with an unknown write.
func (m *model) quarantined() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.uncertain)
}

// checkResult is the outcome of verifying one block.
type checkResult int

const (
	checkOK       checkResult = iota
	checkLost                 // a valid older value: an acknowledged write is gone
	checkMismatch             // torn, foreign, or a value never written there
)

// check verifies a read block of a busy (locked) extent against the
// model; detail describes a failure.
func (m *model) check(lba uint64, data []byte) (checkResult, string) {
	got, v := blockpat.Parse(data, lba)
	m.mu.Lock()
	want := m.stable[lba]
	alt := m.uncertain[lba]
	m.mu.Unlock()
	switch v {
	case blockpat.Torn:
		return checkMismatch, fmt.Sprintf("lba %d: checksum mismatch (torn or corrupted block; expected seq %d)", lba, want)
	case blockpat.Foreign:
		return checkMismatch, fmt.Sprintf("lba %d: holds another LBA's block (expected seq %d)", lba, want)
	}
	if got == want {
		return checkOK, ""
	}
	for _, a := range alt {
		if got == a {
			return checkOK, ""
		}
	}
	if got < want {
		return checkLost, fmt.Sprintf("lba %d: holds seq %d, but seq %d was acknowledged later", lba, got, want)
	}
	return checkMismatch, fmt.Sprintf("lba %d: holds seq %d, never acknowledged or pending there (expected seq %d)", lba, got, want)
}
