package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/costar-project/costar/internal/blockpat"
)

const ss = 512

// fakeLog builds a dm-log-writes log the way the kernel lays it out.
type fakeLog struct {
	body    []byte
	entries uint64
}

func (l *fakeLog) entry(sector, sectors, flags uint64, mark string, data []byte) *fakeLog {
	hdr := make([]byte, ss)
	binary.LittleEndian.PutUint64(hdr[0:], sector)
	binary.LittleEndian.PutUint64(hdr[8:], sectors)
	binary.LittleEndian.PutUint64(hdr[16:], flags)
	binary.LittleEndian.PutUint64(hdr[24:], uint64(len(mark)))
	copy(hdr[32:], mark)
	l.body = append(l.body, hdr...)
	l.body = append(l.body, data...)
	l.entries++
	return l
}

// write logs our pattern for LU sectors [lu, lu+n) at device sector dev.
func (l *fakeLog) write(dev, lu, n, seq, flags uint64) *fakeLog {
	data := make([]byte, n*ss)
	for i := uint64(0); i < n; i++ {
		blockpat.Fill(data[i*ss:(i+1)*ss], lu+i, seq, 0)
	}
	return l.entry(dev, n, flags, "", data)
}

func (l *fakeLog) flush() *fakeLog           { return l.entry(0, 0, flagFlush, "", nil) }
func (l *fakeLog) mark(name string) *fakeLog { return l.entry(0, 0, flagMark, name, nil) }

func (l *fakeLog) bytes() []byte {
	sup := make([]byte, ss)
	binary.LittleEndian.PutUint64(sup[0:], logMagic)
	binary.LittleEndian.PutUint64(sup[8:], logVersion)
	binary.LittleEndian.PutUint64(sup[16:], l.entries)
	binary.LittleEndian.PutUint32(sup[24:], ss)
	return append(sup, l.body...)
}

func w(seq, sector, n uint64) journalEntry {
	return journalEntry{W: &journalWrite{Seq: seq, Sector: sector, N: n}}
}
func m(name string) journalEntry { return journalEntry{M: name} }

func TestReplay(t *testing.T) {
	tornData := make([]byte, 8*ss)
	for i := uint64(0); i < 8; i++ {
		blockpat.Fill(tornData[i*ss:(i+1)*ss], i, 1, 0)
	}
	copy(tornData[3*ss+100:], bytes.Repeat([]byte{0xee}, 200)) // sector 3 half overwritten

	for _, tc := range []struct {
		name    string
		log     *fakeLog
		journal []journalEntry
		off     int64
		want    replayResult // compared: flushPoints, marks, writesChecked, missing, torn, unexpected, dataOffset
		err     error
	}{
		{
			name:    "flushed before the mark",
			log:     new(fakeLog).write(0, 0, 8, 1, 0).write(8, 8, 8, 2, 0).flush().mark("m0"),
			journal: []journalEntry{w(1, 0, 8), w(2, 8, 8), m("m0")},
			want:    replayResult{flushPoints: 1, marks: 1, writesChecked: 2},
		},
		{
			name:    "acknowledged durable but logged after the mark (flush answered too early)",
			log:     new(fakeLog).mark("m0").write(0, 0, 8, 1, 0).flush(),
			journal: []journalEntry{w(1, 0, 8), m("m0")},
			want:    replayResult{flushPoints: 1, marks: 1, writesChecked: 1, missing: 1},
		},
		{
			name:    "second write lost: the block keeps the first",
			log:     new(fakeLog).write(0, 0, 8, 1, 0).flush().mark("m0").flush().mark("m1"),
			journal: []journalEntry{w(1, 0, 8), m("m0"), w(2, 0, 8), m("m1")},
			want:    replayResult{flushPoints: 2, marks: 2, writesChecked: 2, missing: 8},
		},
		{
			name:    "FUA writes need no flush",
			log:     new(fakeLog).write(0, 0, 8, 1, flagFUA).write(16, 16, 8, 2, flagFUA).mark("m0"),
			journal: []journalEntry{w(1, 0, 8), w(2, 16, 8), m("m0")},
			want:    replayResult{flushPoints: 2, marks: 1, writesChecked: 2},
		},
		{
			name:    "torn sector at a flush point",
			log:     new(fakeLog).entry(0, 8, 0, "", tornData).flush().mark("m0"),
			journal: []journalEntry{w(1, 0, 8), m("m0")},
			want:    replayResult{flushPoints: 1, marks: 1, writesChecked: 1, torn: 2}, // at the flush and at the mark
		},
		{
			name: "LU data after the store's own metadata",
			log: new(fakeLog).entry(0, 8, flagFUA, "", bytes.Repeat([]byte{7}, 8*ss)).
				write(8+4, 4, 4, 1, 0).flush().mark("other").mark("m0"),
			journal: []journalEntry{w(1, 4, 4), m("m0")},
			want:    replayResult{flushPoints: 2, marks: 1, writesChecked: 1, dataOffset: 8 * ss},
		},
		{
			name:    "a newer write than acknowledged",
			log:     new(fakeLog).write(0, 0, 1, 5, 0).flush().mark("m0"),
			journal: []journalEntry{w(4, 0, 1), m("m0")},
			want:    replayResult{flushPoints: 1, marks: 1, writesChecked: 1, unexpected: 1},
		},
		{
			name:    "journal mark missing from the log",
			log:     new(fakeLog).write(0, 0, 8, 1, 0).flush().mark("m0"),
			journal: []journalEntry{w(1, 0, 8), m("m0"), w(2, 0, 8), m("m1")},
			want:    replayResult{flushPoints: 1, marks: 1, writesChecked: 1},
			err:     errLogShort,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off := tc.off
			if off == 0 {
				off = -1
			}
			got, err := replay(bytes.NewReader(tc.log.bytes()), ss, off, tc.journal)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if got.flushPoints != tc.want.flushPoints || got.marks != tc.want.marks || got.writesChecked != tc.want.writesChecked ||
				got.missing != tc.want.missing || got.torn != tc.want.torn || got.unexpected != tc.want.unexpected ||
				got.dataOffset != tc.want.dataOffset {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestReadSuperRejects(t *testing.T) {
	good := new(fakeLog).flush().bytes()
	for _, tc := range []struct {
		name  string
		patch func(b []byte)
		want  string
	}{
		{"magic", func(b []byte) { b[0] ^= 1 }, "magic"},
		{"version", func(b []byte) { b[8] = 2 }, "version"},
		{"sector size", func(b []byte) { binary.LittleEndian.PutUint32(b[24:], 1000) }, "sector size"},
	} {
		b := append([]byte(nil), good...)
		tc.patch(b)
		if _, err := readSuper(bytes.NewReader(b)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	// A header claiming more entries than the log holds is an error, not a hang.
	b := new(fakeLog).flush().bytes()
	binary.LittleEndian.PutUint64(b[16:], 1<<40)
	if _, err := replay(bytes.NewReader(b), ss, -1, nil); err == nil {
		t.Error("a truncated log replayed without error")
	}
}

func TestReadJournal(t *testing.T) {
	for _, tc := range []struct {
		in string
		n  int
		ok bool
	}{
		{`{"w":{"seq":1,"sector":0,"n":8}}` + "\n" + `{"m":"a"}` + "\n", 2, true},
		{"", 0, true},
		{`{"w":{"seq":1,"sector":0,"n":0}}`, 0, false},
		{`{"m":""}`, 0, false},
		{`{"w":{"seq":1,"sector":0,"n":8},"m":"x"}`, 0, false},
		{`not json`, 0, false},
	} {
		got, err := readJournal(strings.NewReader(tc.in))
		if (err == nil) != tc.ok || len(got) != tc.n {
			t.Errorf("readJournal(%q) = %d entries, %v", tc.in, len(got), err)
		}
	}
}
