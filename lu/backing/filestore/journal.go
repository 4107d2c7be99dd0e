package filestore

// The atomic write journal: a redo log that makes WRITE ATOMIC (16)
// power-fail atomic on LUs backed by a regular file.
//
// The journal is a sidecar file next to the LU's metadata: <data file>.atomic
// for an LU with a metadata header, <meta file>.atomic for an LU with a
// separate metadata file. It is preallocated to hold one record of up to
// maxAtomicBytes of data. A WRITE ATOMIC (one at a time, under the range
// lock and the journal mutex):
//
//  1. writes the record (header + data, one pwrite) and makes it durable;
//  2. writes the data to the LU and makes it durable;
//  3. marks the record applied (a new header with length 0) durably.
//
// A crash before 1 completes leaves a record whose CRC does not match: it
// is ignored, and the LU was not touched. A crash after 1 leaves a valid
// unapplied record, which Create and Open replay into the data file
// (idempotently) before the LU serves I/O. The record holds the LU's GUID
// and absolute byte offset; a record for another LU is ignored.
//
// Cluster mode: every node opens a shared LU, but only the owner writes
// it. A standby that replayed at open could re-apply a record the owner is
// just applying (record written, data written, not yet marked) after the
// owner overwrote those blocks with a later plain write, losing that
// write; even resetting a torn record could wipe the owner's record being
// written. So the daemon opens with deferred replay (OpenDeferred,
// Options.DeferJournalReplay): open neither reads nor writes the journal
// file, and atomic writes are refused until ReplayJournal, which the
// device runs on every takeover right after recording its fencing token
// (lu.Device.SetFence). Replaying then is right: a record the old owner
// marked applied is skipped (length 0), and one it did not mark is from a
// write that never answered GOOD, so applying it completes that write
// (all, as WRITE ATOMIC promises, not nothing) — and no later write of the
// old owner's can land over it, because the old owner is fenced: its store
// calls are refused once the new token is recorded (lu/fence.go), which
// happened before the replay.
//
// The journal file is kept when the LU is closed (or deleted from the
// configuration): it belongs with the data file and must be moved with it.
// A missing journal is created; a journal that cannot be created turns
// WRITE ATOMIC off for the LU (with a warning). Block devices and zvols
// have no journal and do not offer WRITE ATOMIC: a crash could tear it.
//
// Journal layout (little endian):
//
//	0   magic "CSTRATOM"
//	8   version (1)
//	12  CRC-32C of bytes 0..11, 16..63 and the data
//	16  sequence number
//	24  byte offset in the data file
//	32  data length in bytes; 0 = nothing pending
//	36  reserved (0)
//	40  LU GUID
//	56  reserved (0)
//	4096 data

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"sync"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/fdstore"
)

const (
	// maxAtomicBytes bounds one WRITE ATOMIC (the journal's data area):
	// 256 blocks of 4 KiB, 2048 blocks of 512 bytes.
	maxAtomicBytes = 1 << 20

	journalMagic   = "CSTRATOM"
	journalVersion = 1
	journalHdrLen  = 64
	journalDataOff = 4096
	journalSize    = journalDataOff + maxAtomicBytes
	journalSuffix  = ".atomic"
)

// errJournalStopped is returned by a journal whose test hook stopped a
// write after the journal step (a simulated crash).
var errJournalStopped = errors.New("lu: atomic write stopped after the journal step (test hook)")

// errJournalNotReplayed refuses an atomic write before ReplayJournal ran on
// a deferred journal: this node has not taken the LU over, so it answers
// as a standby (ErrFenced: NOT READY, TARGET PORT IN STANDBY STATE) and
// the device latches no write failure. The ALUA check refuses WRITE ATOMIC
// on a standby LU first; this is the store's own guard.
var errJournalNotReplayed = fmt.Errorf("%w: the atomic write journal is replayed only when this node takes the LU over", backing.ErrFenced)

// atomicJournal is an LU's open atomic write journal.
type atomicJournal struct {
	mu   sync.Mutex
	path string
	be   *fdstore.FD // nil until opened (deferred: by ReplayJournal)
	seq  uint64
	// guid is the LU's GUID, written into every record.
	guid [16]byte
	// dataOff, dataEnd: the LU's bytes in the data file (a record outside
	// them is refused).
	dataOff, dataEnd uint64
	// readOnly: the data file is read-only; the journal is only checked.
	readOnly bool
	// replayed: the journal was replayed since it was opened (or since the
	// last takeover); atomic writes are refused until then.
	replayed bool
	log      *slog.Logger
	// created: this store made the journal file (Discard removes it).
	created bool
	// broken is set when a record could not be marked applied: a later
	// replay could overwrite newer data, so no more atomic writes run.
	broken error

	// stopAfterJournal, a test hook set before use: when it returns true
	// the write stops after step 1 (as if the target crashed).
	stopAfterJournal func() bool
}

// journalRecord is a decoded journal header.
type journalRecord struct {
	seq    uint64
	off    uint64
	length uint32
	guid   [16]byte
}

// journalPath returns the journal file of an LU, "" when the LU cannot
// have one (block devices).
func (s *Store) journalPath() string {
	if s.data == nil || s.data.IsBlock() {
		return ""
	}
	if s.metaFile != "" {
		return s.metaFile + journalSuffix
	}
	return s.dataFile + journalSuffix
}

func encodeJournalHeader(r journalRecord, data []byte) []byte {
	h := make([]byte, journalHdrLen)
	copy(h[0:8], journalMagic)
	binary.LittleEndian.PutUint32(h[8:12], journalVersion)
	binary.LittleEndian.PutUint64(h[16:24], r.seq)
	binary.LittleEndian.PutUint64(h[24:32], r.off)
	binary.LittleEndian.PutUint32(h[32:36], r.length)
	copy(h[40:56], r.guid[:])
	binary.LittleEndian.PutUint32(h[12:16], journalCRC(h, data))
	return h
}

func journalCRC(h, data []byte) uint32 {
	c := crc32.Update(0, castagnoli, h[0:12])
	c = crc32.Update(c, castagnoli, h[16:journalHdrLen])
	return crc32.Update(c, castagnoli, data)
}

// decodeJournalHeader checks a header's magic and version; the CRC is
// checked by the caller once the data is read.
func decodeJournalHeader(h []byte) (journalRecord, bool) {
	if len(h) < journalHdrLen || string(h[0:8]) != journalMagic || binary.LittleEndian.Uint32(h[8:12]) != journalVersion {
		return journalRecord{}, false
	}
	r := journalRecord{
		seq:    binary.LittleEndian.Uint64(h[16:24]),
		off:    binary.LittleEndian.Uint64(h[24:32]),
		length: binary.LittleEndian.Uint32(h[32:36]),
	}
	copy(r.guid[:], h[40:56])
	return r, true
}

// readJournal returns the journal's valid record (ok false: none, or torn).
func readJournal(be *fdstore.FD) (r journalRecord, data []byte, ok bool, err error) {
	n, err := be.Size()
	if err != nil {
		return r, nil, false, err
	}
	if n < journalHdrLen {
		return r, nil, false, nil
	}
	h := make([]byte, journalHdrLen)
	if err := be.ReadAt(h, 0); err != nil {
		return r, nil, false, fmt.Errorf("lu: reading %s: %w", be.Path(), err)
	}
	r, ok = decodeJournalHeader(h)
	if !ok || r.length > maxAtomicBytes || n < journalDataOff+uint64(r.length) {
		return r, nil, false, nil
	}
	data = make([]byte, r.length)
	if err := be.ReadAt(data, journalDataOff); err != nil {
		return r, nil, false, fmt.Errorf("lu: reading %s: %w", be.Path(), err)
	}
	if journalCRC(h, data) != binary.LittleEndian.Uint32(h[12:16]) {
		return r, nil, false, nil
	}
	return r, data, true, nil
}

// openAtomicJournal prepares the LU's journal; the LU's data lies in bytes
// [dataOff, dataEnd) of the data file. Unless deferred it opens (or
// creates) the journal file and replays an unapplied record now. Deferred
// (cluster mode), it touches no file: the journal refuses atomic writes
// until ReplayJournal ran. It returns nil (WRITE ATOMIC off) for LUs
// without a journal or, not deferred, when the journal cannot be opened or
// the data file is read-only; an unapplied record that cannot be replayed
// is an error.
func (s *Store) openAtomicJournal(guid [16]byte, dataOff, dataEnd uint64, deferred bool) (*atomicJournal, error) {
	path := s.journalPath()
	if path == "" {
		return nil, nil
	}
	j := &atomicJournal{path: path, guid: guid, dataOff: dataOff, dataEnd: dataEnd, readOnly: s.data.ReadOnly(), log: s.log}
	if deferred {
		return j, nil
	}
	if j.readOnly {
		return nil, j.checkReadOnly()
	}
	be, created, err := openJournalFile(path)
	if err != nil {
		s.log.Warn("lu: cannot open the atomic write journal; WRITE ATOMIC is off", "path", path, "err", err)
		return nil, nil
	}
	if err := s.attachJournal(j, be, created); err != nil {
		return nil, err
	}
	return j, nil
}

// openJournalFile opens the journal at path, creating it when missing
// (O_EXCL: never truncating one another node made meanwhile).
func openJournalFile(path string) (be *fdstore.FD, created bool, err error) {
	if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
		be, err = fdstore.Create(path, 0)
		return be, err == nil, err
	}
	be, err = fdstore.Open(path, false)
	return be, false, err
}

// attachJournal makes be j's file (created: this store made it), replays
// it and preallocates it; on error be is closed (and removed if created).
// j.mu is held or j not yet shared.
func (s *Store) attachJournal(j *atomicJournal, be *fdstore.FD, created bool) error {
	fail := func(err error) error {
		be.Close()
		if created {
			os.Remove(j.path)
		}
		return err
	}
	if created {
		if err := s.syncParentDir(j.path); err != nil {
			return fail(err)
		}
	}
	j.be, j.created = be, created
	if err := j.replayLocked(s.data, s.dataFile); err != nil {
		j.be, j.created = nil, false
		return fail(err)
	}
	if err := be.Preallocate(journalSize); err != nil {
		j.be, j.created, j.replayed = nil, false, false
		return fail(err)
	}
	return nil
}

// checkReadOnly refuses to serve a read-only LU whose journal holds an
// unapplied record: nothing can replay it, and the range it covers may be
// torn.
func (j *atomicJournal) checkReadOnly() error {
	be, err := fdstore.Open(j.path, true)
	if err != nil {
		return nil // no journal: nothing pending
	}
	defer be.Close()
	r, _, ok, err := readJournal(be)
	if err != nil {
		return err
	}
	if ok && r.length != 0 && r.guid == j.guid {
		return fmt.Errorf("lu: %s holds an unapplied atomic write but the data file is read-only; open it read-write to replay it", j.path)
	}
	return nil
}

// replayLocked reads the journal file and applies an unapplied record of
// this LU to data (dataFile names it), then marks it applied; an empty,
// torn or other LU's journal is reset to an empty record. A record already
// marked applied (length 0) is left alone: nothing is written. j.mu is
// held (or j not yet shared) and j.be open.
func (j *atomicJournal) replayLocked(data *fdstore.FD, dataFile string) error {
	j.replayed = false
	r, rec, ok, err := readJournal(j.be)
	if err != nil {
		return err
	}
	if ok {
		j.seq = max(j.seq, r.seq)
	}
	switch {
	case ok && r.length != 0 && r.guid == j.guid:
		if r.off+uint64(r.length) > j.dataEnd || r.off < j.dataOff {
			return fmt.Errorf("lu: %s: atomic write record at byte %d (+%d) lies outside the LU", j.path, r.off, r.length)
		}
		if err := data.WriteAt(rec, int64(r.off), true); err != nil {
			return fmt.Errorf("lu: replaying the atomic write journal %s into %s: %w", j.path, dataFile, err)
		}
		if err := j.markApplied(r.seq); err != nil {
			return err
		}
		j.log.Warn("lu: replayed an unapplied atomic write", "path", j.path, "offset", r.off, "bytes", r.length, "seq", r.seq)
	case !ok || r.guid != j.guid:
		// Empty, torn or another LU's: start afresh.
		if err := j.markApplied(j.seq); err != nil {
			return err
		}
	}
	j.replayed = true
	j.broken = nil
	return nil
}

// ReplayJournal implements backing.JournalReplayer: it replays the journal
// as the file holds it now, opening (or creating) the file the first time.
// A store opened with deferred replay (OpenDeferred,
// Options.DeferJournalReplay) refuses WRITE ATOMIC until it succeeded. The
// device calls it on every takeover, right after recording its fencing
// token, so a record the previous owner left unapplied is applied by the
// new owner (see "Cluster mode" at the top of this file). A read-only LU
// is only checked: a pending record is an error.
func (s *Store) ReplayJournal() error {
	j := s.journal
	if j == nil {
		return nil
	}
	if j.readOnly {
		return j.checkReadOnly()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.be != nil {
		return j.replayLocked(s.data, s.dataFile)
	}
	be, created, err := openJournalFile(j.path)
	if err != nil {
		if _, serr := os.Stat(j.path); !errors.Is(serr, os.ErrNotExist) {
			// A journal that exists (or may) but cannot be read may hold a
			// record: serving without replaying it could expose a torn range.
			return fmt.Errorf("lu: opening the atomic write journal: %w", err)
		}
		// None, and none can be made: nothing is pending; WRITE ATOMIC
		// (already offered) fails until a later takeover makes one.
		s.log.Warn("lu: cannot create the atomic write journal; WRITE ATOMIC fails", "path", j.path, "err", err)
		j.broken = fmt.Errorf("lu: no atomic write journal %s: %w", j.path, err)
		j.replayed = true
		return nil
	}
	return s.attachJournal(j, be, created)
}

// markApplied writes an empty header with sequence number seq, durably.
func (j *atomicJournal) markApplied(seq uint64) error {
	h := encodeJournalHeader(journalRecord{seq: seq, guid: j.guid}, nil)
	if err := j.be.WriteAt(h, 0, true); err != nil {
		return fmt.Errorf("lu: writing the atomic write journal %s: %w", j.be.Path(), err)
	}
	return nil
}

// write makes p at byte offset off of data durable, all or nothing across
// a crash. A data write error leaves the range's contents unspecified (as
// for any failed write) and the record cancelled.
func (j *atomicJournal) write(data *fdstore.FD, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	if len(p) > maxAtomicBytes || off < 0 {
		return fmt.Errorf("lu: atomic write of %d bytes at %d: too large", len(p), off)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.replayed {
		return fmt.Errorf("%w: %s", errJournalNotReplayed, j.path)
	}
	if j.broken != nil {
		return j.broken
	}
	// The space first: a full file system fails the write before anything
	// is written.
	if err := data.Reserve(off, int64(len(p))); err != nil {
		return err
	}
	seq := j.seq + 1
	rec := make([]byte, journalDataOff+len(p))
	copy(rec, encodeJournalHeader(journalRecord{seq: seq, off: uint64(off), length: uint32(len(p)), guid: j.guid}, p))
	copy(rec[journalDataOff:], p)
	if err := j.be.WriteAt(rec, 0, true); err != nil {
		// The record may be valid on disk; cancel it.
		j.seq = seq
		if cerr := j.markApplied(seq); cerr != nil {
			j.broken = cerr
		}
		return fmt.Errorf("lu: writing the atomic write journal %s: %w", j.be.Path(), err)
	}
	j.seq = seq
	if j.stopAfterJournal != nil && j.stopAfterJournal() {
		j.broken = errJournalStopped
		return errJournalStopped
	}
	if err := data.WriteAt(p, off, true); err != nil {
		if cerr := j.markApplied(seq); cerr != nil {
			j.broken = cerr
		}
		return err
	}
	if err := j.markApplied(seq); err != nil {
		j.broken = err
		return err
	}
	return nil
}

func (j *atomicJournal) close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.be == nil {
		return nil
	}
	return j.be.Close()
}

// offered: WRITE ATOMIC is advertised (a deferred journal is, from open on,
// so the LU's capabilities do not change at takeover).
func (j *atomicJournal) offered() bool { return j != nil && !j.readOnly }

// JournalPending reports whether the journal file at path holds a valid
// unapplied record (tests).
func JournalPending(path string) (bool, error) {
	be, err := fdstore.Open(path, true)
	if err != nil {
		return false, err
	}
	defer be.Close()
	r, _, ok, err := readJournal(be)
	return ok && r.length != 0, err
}

// JournalPath is the LU's atomic write journal file, "" when it has none.
func (s *Store) JournalPath() string { return s.journalPath() }

// StopAfterJournal, a test hook: while stop returns true an atomic write
// stops after the journal step, as if the target crashed there.
func (s *Store) StopAfterJournal(stop func() bool) {
	if s.journal != nil {
		s.journal.mu.Lock()
		s.journal.stopAfterJournal = stop
		s.journal.mu.Unlock()
	}
}

// JournalSeq is the sequence number of the journal's last record (0
// without a journal).
func (s *Store) JournalSeq() uint64 {
	if s.journal == nil {
		return 0
	}
	s.journal.mu.Lock()
	defer s.journal.mu.Unlock()
	return s.journal.seq
}

// JournalRecord returns a journal file image holding an unapplied record
// of data at LU-relative offset off for the LU named guid, as the journal
// step writes it (tests craft torn and foreign records with it).
func (s *Store) JournalRecord(seq uint64, guid [16]byte, off int64, data []byte) []byte {
	abs := uint64(off + s.dataOff)
	rec := make([]byte, journalDataOff+len(data))
	copy(rec, encodeJournalHeader(journalRecord{seq: seq, off: abs, length: uint32(len(data)), guid: guid}, data))
	copy(rec[journalDataOff:], data)
	return rec
}

// JournalDataOff is where a journal record's data starts in the file.
const JournalDataOff = journalDataOff

// JournalSize is the size of a preallocated journal file.
const JournalSize = journalSize
