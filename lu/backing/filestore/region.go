package filestore

import (
	"fmt"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/fdstore"
)

// region reads and writes the two-slot metadata region at the start of a
// file (the data file's header or a separate meta file).
type region struct {
	be   *fdstore.FD
	gen  uint64 // generation of the newest valid slot
	slot int    // index of the slot holding it; -1: none yet
}

// load reads both slots from the medium and returns the newest valid
// metadata; it records which slot holds it, so the next store writes the
// other one even when another node (shared store) wrote last.
func (r *region) load() (*metadata, error) {
	buf := make([]byte, metaRegionSize)
	if err := r.be.ReadAtFresh(buf, 0); err != nil {
		return nil, fmt.Errorf("%w: reading metadata region of %s: %v", backing.ErrNoMeta, r.be.Path(), err)
	}
	var (
		best           *metadata
		bestGen        uint64
		bestSlot       = -1
		problems       []string
		corrupt, newer bool
	)
	for i := 0; i < 2; i++ {
		m, gen, st, err := decodeSlot(buf[i*metaSlotSize : (i+1)*metaSlotSize])
		switch st {
		case slotValid:
			if best == nil || gen > bestGen {
				best, bestGen, bestSlot = m, gen, i
			}
		case slotCorrupt:
			corrupt = true
			problems = append(problems, fmt.Sprintf("copy %d: %v", i, err))
		case slotNewer:
			newer = true
			problems = append(problems, fmt.Sprintf("copy %d: %v", i, err))
		}
	}
	if best == nil {
		switch {
		case newer:
			return nil, fmt.Errorf("%w in %s: %v", backing.ErrNoMeta, r.be.Path(), problems)
		case corrupt:
			return nil, fmt.Errorf("%w in %s: both copies are damaged: %v", backing.ErrNoMeta, r.be.Path(), problems)
		}
		return nil, fmt.Errorf("%w in %s: not an LU created by costar (no metadata header)", backing.ErrNoMeta, r.be.Path())
	}
	r.gen, r.slot = bestGen, bestSlot
	return best, nil
}

// store writes m as a new generation into the slot not holding the newest
// copy, then makes it durable.
func (r *region) store(m *metadata) error {
	img, err := m.encodeSlot(r.gen + 1)
	if err != nil {
		return err
	}
	slot := 1 - r.slot
	if r.slot < 0 {
		slot = 0
	}
	if err := r.be.WriteAt(img, int64(slot)*metaSlotSize, false); err != nil {
		return fmt.Errorf("lu: writing metadata to %s: %w", r.be.Path(), err)
	}
	if err := r.be.Datasync(); err != nil {
		return fmt.Errorf("lu: syncing metadata of %s: %w", r.be.Path(), err)
	}
	r.gen++
	r.slot = slot
	return nil
}

// initialize writes m into both slots (generations 1 and 2), replacing
// whatever an earlier user of the file left there.
func (r *region) initialize(m *metadata) error {
	for slot, gen := range []uint64{1, 2} {
		img, err := m.encodeSlot(gen)
		if err != nil {
			return err
		}
		if err := r.be.WriteAt(img, int64(slot)*metaSlotSize, false); err != nil {
			return fmt.Errorf("lu: writing metadata to %s: %w", r.be.Path(), err)
		}
	}
	if err := r.be.Datasync(); err != nil {
		return fmt.Errorf("lu: syncing metadata of %s: %w", r.be.Path(), err)
	}
	r.gen, r.slot = 2, 1
	return nil
}
