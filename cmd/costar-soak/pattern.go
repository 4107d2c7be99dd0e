package main

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

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const minBlockSize = 32 // room for the header and the CRC

// fillBlock writes the pattern of (lba, seq, writer) into b.
func fillBlock(b []byte, lba, seq uint64, writer uint32) {
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
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli))
}

// blockVerdict is what a read block holds.
type blockVerdict int

const (
	blockValid   blockVerdict = iota // a whole block written by us for this LBA (or all zeros)
	blockTorn                        // CRC does not match: torn or corrupted
	blockForeign                     // valid CRC but another LBA's block
)

// parseBlock returns the sequence number a block holds (0 for all
// zeros) and whether it is whole and belongs to lba.
func parseBlock(b []byte, lba uint64) (uint64, blockVerdict) {
	if isZero(b) {
		return 0, blockValid
	}
	end := len(b) - 4
	if crc32.Checksum(b[:end], castagnoli) != binary.LittleEndian.Uint32(b[end:]) {
		return 0, blockTorn
	}
	if binary.LittleEndian.Uint64(b[0:]) != lba {
		return 0, blockForeign
	}
	return binary.LittleEndian.Uint64(b[8:]), blockValid
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
