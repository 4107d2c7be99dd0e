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

// atomicJournal is an LU's open atomic write journal.
type atomicJournal struct {
	mu  sync.Mutex
	be  *fdstore.FD
	seq uint64
	// guid is the LU's GUID, written into every record.
	guid [16]byte
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

// openAtomicJournal opens (or creates) the LU's journal and replays an
// unapplied record into the data file. The LU's data lies in bytes
// [dataOff, dataEnd) of the data file. It returns nil (WRITE ATOMIC off) for LUs without a
// journal, or when a journal cannot be created; an unapplied record that
// cannot be replayed is an error.
func (s *Store) openAtomicJournal(guid [16]byte, dataOff, dataEnd uint64, log *slog.Logger) (*atomicJournal, error) {
	path := s.journalPath()
	if path == "" {
		return nil, nil
	}
	if s.data.ReadOnly() {
		// Nothing can be written; refuse to serve a range an unapplied
		// atomic write may have torn.
		be, err := fdstore.Open(path, true)
		if err != nil {
			return nil, nil // no journal: nothing pending
		}
		defer be.Close()
		r, _, ok, err := readJournal(be)
		if err != nil {
			return nil, err
		}
		if ok && r.length != 0 && r.guid == guid {
			return nil, fmt.Errorf("lu: %s holds an unapplied atomic write but %s is read-only; open it read-write to replay it", path, s.dataFile)
		}
		return nil, nil
	}
	var (
		be      *fdstore.FD
		err     error
		created bool
	)
	if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
		be, err = fdstore.Create(path, 0)
		created = err == nil
	} else {
		be, err = fdstore.Open(path, false)
	}
	if err != nil {
		log.Warn("lu: cannot open the atomic write journal; WRITE ATOMIC is off", "path", path, "err", err)
		return nil, nil
	}
	fail := func(err error) (*atomicJournal, error) {
		be.Close()
		if created {
			os.Remove(path)
		}
		return nil, err
	}
	if created {
		if err := s.syncParentDir(path); err != nil {
			return fail(err)
		}
	}
	j := &atomicJournal{be: be, guid: guid, created: created}
	r, data, ok, err := readJournal(be)
	if err != nil {
		return fail(err)
	}
	if ok {
		j.seq = r.seq
	}
	if ok && r.length != 0 && r.guid == guid {
		if r.off+uint64(r.length) > dataEnd || r.off < dataOff {
			return fail(fmt.Errorf("lu: %s: atomic write record at byte %d (+%d) lies outside the LU", path, r.off, r.length))
		}
		if err := s.data.WriteAt(data, int64(r.off), true); err != nil {
			return fail(fmt.Errorf("lu: replaying the atomic write journal %s into %s: %w", path, s.dataFile, err))
		}
		if err := j.markApplied(r.seq); err != nil {
			return fail(err)
		}
		log.Warn("lu: replayed an unapplied atomic write", "path", path, "offset", r.off, "bytes", r.length, "seq", r.seq)
	} else if !ok || r.guid != guid {
		// Empty, torn or another LU's: start afresh.
		if err := j.markApplied(j.seq); err != nil {
			return fail(err)
		}
	}
	if err := be.Preallocate(journalSize); err != nil {
		return fail(err)
	}
	return j, nil
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
	if j.broken != nil {
		return j.broken
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
	return j.be.Close()
}

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
		s.journal.stopAfterJournal = stop
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
