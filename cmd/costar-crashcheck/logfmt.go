package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The dm-log-writes log (Linux drivers/md/dm-log-writes.c,
// Documentation/admin-guide/device-mapper/log-writes.rst): the first
// device sector holds the super block, then every entry is one sector of
// header (plus a mark's name) followed by the data it wrote, if any.
// Sectors are the data device's logical block size (the super's
// sectorsize); all fields are little endian. Writes are logged once a
// flush made them durable, or on completion for FUA, so replaying the
// log up to a point gives what a crash at that point must leave.
const (
	logMagic   = 0x6a736677736872
	logVersion = 1

	flagFlush   = 1 << 0
	flagFUA     = 1 << 1
	flagDiscard = 1 << 2
	flagMark    = 1 << 3
)

type logSuper struct {
	entries    uint64
	sectorSize uint32
}

type logEntry struct {
	sector, sectors uint64 // in data device sectors
	flags           uint64
	mark            string
	data            []byte // nil for flushes, marks and discards
}

func readSuper(r io.ReaderAt) (logSuper, error) {
	var b [28]byte
	if _, err := r.ReadAt(b[:], 0); err != nil {
		return logSuper{}, fmt.Errorf("log super block: %w", err)
	}
	if m := binary.LittleEndian.Uint64(b[0:]); m != logMagic {
		return logSuper{}, fmt.Errorf("log super block: magic %#x is not dm-log-writes'", m)
	}
	if v := binary.LittleEndian.Uint64(b[8:]); v != logVersion {
		return logSuper{}, fmt.Errorf("log super block: version %d (want %d)", v, logVersion)
	}
	s := logSuper{entries: binary.LittleEndian.Uint64(b[16:]), sectorSize: binary.LittleEndian.Uint32(b[24:])}
	if s.sectorSize < 512 || s.sectorSize > 65536 || s.sectorSize&(s.sectorSize-1) != 0 {
		return logSuper{}, fmt.Errorf("log super block: sector size %d", s.sectorSize)
	}
	return s, nil
}

// maxEntrySectors bounds one entry's data (the kernel splits bios far
// below this).
const maxEntrySectors = 1 << 16

// logReader walks the entries after the super block.
type logReader struct {
	r    io.ReaderAt
	sup  logSuper
	pos  int64
	read uint64
}

func newLogReader(r io.ReaderAt) (*logReader, error) {
	sup, err := readSuper(r)
	if err != nil {
		return nil, err
	}
	return &logReader{r: r, sup: sup, pos: int64(sup.sectorSize)}, nil
}

// next returns the next entry, or io.EOF after the super's count.
func (l *logReader) next() (logEntry, error) {
	if l.read >= l.sup.entries {
		return logEntry{}, io.EOF
	}
	ss := int64(l.sup.sectorSize)
	hdr := make([]byte, ss)
	if _, err := l.r.ReadAt(hdr, l.pos); err != nil {
		return logEntry{}, fmt.Errorf("%w: entry %d at byte %d: %v", errLogTruncated, l.read, l.pos, err)
	}
	e := logEntry{
		sector:  binary.LittleEndian.Uint64(hdr[0:]),
		sectors: binary.LittleEndian.Uint64(hdr[8:]),
		flags:   binary.LittleEndian.Uint64(hdr[16:]),
	}
	dataLen := binary.LittleEndian.Uint64(hdr[24:])
	l.pos += ss
	l.read++
	switch {
	case e.flags&flagMark != 0:
		if dataLen > uint64(ss-32) {
			return e, fmt.Errorf("log entry %d: mark of %d bytes", l.read-1, dataLen)
		}
		e.mark = string(hdr[32 : 32+dataLen])
	case e.flags&flagDiscard != 0:
	case e.sectors > 0:
		if e.sectors > maxEntrySectors {
			return e, fmt.Errorf("log entry %d: %d sectors", l.read-1, e.sectors)
		}
		e.data = make([]byte, e.sectors*uint64(ss))
		if _, err := l.r.ReadAt(e.data, l.pos); err != nil {
			return e, fmt.Errorf("%w: entry %d data: %v", errLogTruncated, l.read-1, err)
		}
		l.pos += int64(len(e.data))
	}
	return e, nil
}

var (
	errLogShort     = errors.New("log ended before the journal's last mark")
	errLogTruncated = errors.New("log shorter than its super block says")
)
