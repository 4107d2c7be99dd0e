package main

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/costar-project/costar/internal/blockpat"
)

// replayResult counts what the replay checked.
type replayResult struct {
	entries, writes, flushes, fuas, discards int
	flushPoints                              int // entries with FLUSH or FUA: states a crash may leave
	marks                                    int // journal marks reached and checked
	writesChecked                            int // acknowledged-durable journal writes checked at their mark
	sectorsChecked                           int
	missing, torn, unexpected                int
	dataOffset                               int64
	examples                                 []string
}

func (r *replayResult) fail(counter *int, format string, args ...any) {
	*counter++
	if len(r.examples) < 20 {
		r.examples = append(r.examples, fmt.Sprintf(format, args...))
	}
}

// replayer rebuilds the backing device from the log, entry by entry.
type replayer struct {
	ss      uint64            // sector size (the log's; the LU's must match)
	img     map[uint64][]byte // device sector -> content (absent: zeros)
	dataOff int64             // byte offset of LU sector 0 on the device; -1 until found
	journal []journalEntry
	jpos    int               // next journal entry to apply
	expect  map[uint64]uint64 // LU sector -> seq acknowledged durable at the last mark
	tracked map[uint64]bool   // LU sectors the workload ever wrote (journal)
	// LU sectors changed since the last flush point / mark.
	sinceFlush, sinceMark map[uint64]bool
	res                   replayResult
}

func newReplayer(ss uint64, dataOff int64, journal []journalEntry) *replayer {
	r := &replayer{ss: ss, img: map[uint64][]byte{}, dataOff: dataOff, journal: journal,
		expect: map[uint64]uint64{}, tracked: map[uint64]bool{}, sinceFlush: map[uint64]bool{}, sinceMark: map[uint64]bool{}}
	for _, e := range journal {
		if e.W != nil {
			for s := e.W.Sector; s < e.W.Sector+e.W.N; s++ {
				r.tracked[s] = true
			}
		}
	}
	return r
}

// replay walks the whole log and checks the journal's marks.
func replay(log io.ReaderAt, luSectorSize uint64, dataOff int64, journal []journalEntry) (replayResult, error) {
	lr, err := newLogReader(log)
	if err != nil {
		return replayResult{}, err
	}
	if uint64(lr.sup.sectorSize) != luSectorSize {
		return replayResult{}, fmt.Errorf("the log's sector size %d differs from the LU's %d (not supported)", lr.sup.sectorSize, luSectorSize)
	}
	r := newReplayer(luSectorSize, dataOff, journal)
	for {
		e, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r.res, err
		}
		if err := r.apply(e); err != nil {
			return r.res, err
		}
	}
	r.res.dataOffset = r.dataOff
	for _, e := range r.journal[r.jpos:] {
		if e.M != "" {
			return r.res, fmt.Errorf("%w: mark %q not in the log", errLogShort, e.M)
		}
	}
	return r.res, nil
}

func (r *replayer) apply(e logEntry) error {
	r.res.entries++
	switch {
	case e.mark != "":
		return r.mark(e.mark)
	case e.flags&flagDiscard != 0:
		r.res.discards++
		for s := e.sector; s < e.sector+e.sectors; s++ {
			delete(r.img, s)
			r.dirty(s)
		}
	case e.data != nil:
		r.res.writes++
		if r.dataOff < 0 {
			r.findOffset(e)
		}
		for i := uint64(0); i < e.sectors; i++ {
			r.img[e.sector+i] = e.data[i*r.ss : (i+1)*r.ss]
			r.dirty(e.sector + i)
		}
	}
	if e.flags&flagFlush != 0 {
		r.res.flushes++
	}
	if e.flags&flagFUA != 0 {
		r.res.fuas++
	}
	if e.flags&(flagFlush|flagFUA) != 0 {
		r.flushPoint()
	}
	return nil
}

// findOffset learns where the LU's sector 0 lies on the device from the
// first sector of ours the log shows (stmfd may keep metadata first).
func (r *replayer) findOffset(e logEntry) {
	for i := uint64(0); i < e.sectors; i++ {
		lba, _, ok := blockpat.Decode(e.data[i*r.ss : (i+1)*r.ss])
		if ok && r.tracked[lba] {
			r.dataOff = int64((e.sector+i)*r.ss) - int64(lba*r.ss)
			return
		}
	}
}

// dirty records that device sector s changed.
func (r *replayer) dirty(devSector uint64) {
	if r.dataOff < 0 {
		return
	}
	off := int64(devSector*r.ss) - r.dataOff
	if off < 0 {
		return
	}
	lu := uint64(off) / r.ss
	if r.tracked[lu] {
		r.sinceFlush[lu] = true
		r.sinceMark[lu] = true
	}
}

func (r *replayer) sector(lu uint64) []byte {
	if b, ok := r.img[(uint64(r.dataOff)+lu*r.ss)/r.ss]; ok {
		return b
	}
	return make([]byte, r.ss)
}

// flushPoint: a crash here leaves the image as it is now. Every sector of
// ours changed since the last flush point must be whole (the LU's atomic
// write size is its logical block).
func (r *replayer) flushPoint() {
	r.res.flushPoints++
	if r.dataOff < 0 {
		return
	}
	for _, s := range sortedKeys(r.sinceFlush) {
		if _, v := blockpat.Parse(r.sector(s), s); v != blockpat.Valid {
			r.res.fail(&r.res.torn, "flush point %d: LU sector %d is torn or misplaced", r.res.flushPoints, s)
		}
	}
	clear(r.sinceFlush)
}

// mark checks that every write the journal acknowledged as durable before
// this mark is in the image.
func (r *replayer) mark(name string) error {
	start := r.jpos
	for ; r.jpos < len(r.journal); r.jpos++ {
		e := r.journal[r.jpos]
		if e.M != "" {
			break
		}
		for s := e.W.Sector; s < e.W.Sector+e.W.N; s++ {
			r.expect[s] = e.W.Seq
			r.sinceMark[s] = true
		}
	}
	if r.jpos >= len(r.journal) || r.journal[r.jpos].M != name {
		r.jpos = start // not one of ours (e.g. dm-log-writes-end)
		return nil
	}
	writes := 0
	for _, e := range r.journal[start:r.jpos] {
		if e.W != nil {
			writes++
		}
	}
	r.jpos++
	r.res.marks++
	r.res.writesChecked += writes
	if r.dataOff < 0 && len(r.expect) > 0 {
		r.res.fail(&r.res.missing, "mark %s: none of %d acknowledged-durable sectors is in the log", name, len(r.expect))
		return nil
	}
	for _, s := range sortedKeys(r.sinceMark) {
		want, ok := r.expect[s]
		if !ok {
			continue
		}
		r.res.sectorsChecked++
		got, v := blockpat.Parse(r.sector(s), s)
		switch {
		case v != blockpat.Valid:
			r.res.fail(&r.res.torn, "mark %s: LU sector %d is torn or misplaced (expected seq %d)", name, s, want)
		case got < want:
			r.res.fail(&r.res.missing, "mark %s: LU sector %d holds seq %d, acknowledged durable: seq %d", name, s, got, want)
		case got > want:
			r.res.fail(&r.res.unexpected, "mark %s: LU sector %d holds seq %d, newer than the acknowledged seq %d", name, s, got, want)
		}
	}
	clear(r.sinceMark)
	return nil
}

func sortedKeys(m map[uint64]bool) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
