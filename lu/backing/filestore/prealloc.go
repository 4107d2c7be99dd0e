package filestore

import (
	"context"
	"fmt"

	"github.com/costar-project/costar/internal/progress"
)

// Preallocation modes (Options.Preallocation).
const (
	PreallocFalloc = "falloc" // reserve the space (fallocate)
	PreallocFull   = "full"   // reserve it and write zeroes
)

// preallocChunk is how much is allocated between two checks of the
// context and two progress reports.
const preallocChunk = 64 << 20

// zeroBuf is the size of one write of zeroes.
const zeroBuf = 1 << 20

// preallocate allocates bytes [from, to) of the data file, chunk by chunk,
// reporting progress and stopping at once when ctx is cancelled.
func (s *Store) preallocate(ctx context.Context, mode string, from, to uint64) error {
	if mode != PreallocFalloc && mode != PreallocFull {
		return fmt.Errorf("lu: unknown preallocation mode %q", mode)
	}
	if s.data.IsBlock() {
		return fmt.Errorf("lu: %s is a block device; preallocation applies to files", s.dataFile)
	}
	if from >= to {
		return nil
	}
	phase := "allocating " + s.dataFile
	if mode == PreallocFull {
		phase = "writing zeroes to " + s.dataFile
	}
	total := to - from
	var zeroes []byte
	progress.Bytes(ctx, phase, 0, total)
	for off := from; off < to; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lu: preallocating %s: %w", s.dataFile, err)
		}
		n := min(uint64(preallocChunk), to-off)
		if err := s.data.Allocate(int64(off), int64(n)); err != nil {
			return err
		}
		if mode == PreallocFull {
			if zeroes == nil {
				zeroes = make([]byte, zeroBuf)
			}
			for o := off; o < off+n; o += zeroBuf {
				if err := s.data.WriteAt(zeroes[:min(zeroBuf, off+n-o)], int64(o), false); err != nil {
					return fmt.Errorf("lu: writing zeroes to %s: %w", s.dataFile, err)
				}
			}
			// Chunk by chunk, so the progress is the disk's and a cancel
			// does not wait for gigabytes of cached zeroes.
			if err := s.data.Datasync(); err != nil {
				return err
			}
		}
		off += n
		progress.Bytes(ctx, phase, off-from, total)
	}
	return nil
}
