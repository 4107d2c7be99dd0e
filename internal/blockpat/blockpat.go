// Package blockpat is the self-describing block pattern of costar's
// verified-I/O tools (cmd/costar-soak, cmd/costar-crashcheck).
package blockpat

import (
	"encoding/binary"
	"hash/crc32"
)

// A written block carries, in order: its LBA (8 bytes), the write's
// sequence number (8), the writing session (4), filler derived from both,
// and a CRC-32C of everything before it in its last 4 bytes. A read
// then tells a torn or misplaced block (bad CRC or LBA) from a stale
// one (a valid older sequence number). Sequence 0 is the LU's initial
// all-zero block.

// castagnoli is CRC-32C's table (hash/crc32 builds it once).
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// MinBlockSize leaves room for the header and the CRC.
const MinBlockSize = 32

// Fill writes the pattern of (lba, seq, writer) into b.
func Fill(b []byte, lba, seq uint64, writer uint32) {
	binary.LittleEndian.PutUint64(b[0:], lba)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[16:], writer)
	x := lba*0x9e3779b97f4a7c15 ^ seq
	end := len(b) - 4
	i := 20
	for ; i+8 <= end; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	for ; i < end; i++ {
		b[i] = byte(x >> (8 * (i % 8)))
	}
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli()))
}

// Verdict is what a read block holds.
type Verdict int

const (
	Valid   Verdict = iota // a whole block written by us for this LBA (or all zeros)
	Torn                   // CRC does not match: torn or corrupted
	Foreign                // valid CRC but another LBA's block
)

// Parse returns the sequence number a block holds (0 for all
// zeros) and whether it is whole and belongs to lba.
func Parse(b []byte, lba uint64) (uint64, Verdict) {
	if isZero(b) {
		return 0, Valid
	}
	end := len(b) - 4
	if crc32.Checksum(b[:end], castagnoli()) != binary.LittleEndian.Uint32(b[end:]) {
		return 0, Torn
	}
	if binary.LittleEndian.Uint64(b[0:]) != lba {
		return 0, Foreign
	}
	return binary.LittleEndian.Uint64(b[8:]), Valid
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Decode returns the LBA and sequence number a whole (CRC-valid,
// non-zero) block claims; ok is false for anything else.
func Decode(b []byte) (lba, seq uint64, ok bool) {
	if len(b) < MinBlockSize || isZero(b) {
		return 0, 0, false
	}
	end := len(b) - 4
	if crc32.Checksum(b[:end], castagnoli()) != binary.LittleEndian.Uint32(b[end:]) {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:]), true
}
