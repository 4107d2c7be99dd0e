package lu

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/costar-project/costar/lu/backing/filestore"
	"github.com/costar-project/costar/scsi"
)

// atomicWrite runs WRITE ATOMIC (16) of data at lba.
func atomicWrite(t *testing.T, d *Device, lba uint64, data []byte) resp {
	t.Helper()
	return exec(t, d, req{cdb: writeAtomicCDB(0, lba, uint16(len(data)/512)), dir: scsi.DirWrite, expLen: uint32(len(data)), data: data})
}

func readBlocks(t *testing.T, d *Device, lba uint64, n uint32) []byte {
	t.Helper()
	r := exec(t, d, req{cdb: cdb16(scsi.OpRead16, 0, lba, n), dir: scsi.DirRead, expLen: n * 512})
	expectGood(t, "READ (16)", r)
	return r.data
}

// journalLU creates a file LU (header or meta file) and returns it with
// its paths; the caller closes it.
func journalLU(t *testing.T, metaFile bool) (d *Device, data, meta string) {
	t.Helper()
	dir := t.TempDir()
	data = filepath.Join(dir, "lu.img")
	if metaFile {
		meta = filepath.Join(dir, "lu.meta")
	}
	d, err := createFile(context.Background(), fileConfig{DataFile: data, MetaFile: meta, Size: 1 << 20},
		&GUIDGenerator{HostID: HostIDFrom32(7)}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	return d, data, meta
}

func TestAtomicJournalReplay(t *testing.T) {
	for _, metaFile := range []bool{false, true} {
		t.Run(map[bool]string{false: "header", true: "metafile"}[metaFile], func(t *testing.T) {
			d, data, meta := journalLU(t, metaFile)
			jpath := fileStore(d).JournalPath()
			want := data + ".atomic"
			if metaFile {
				want = meta + ".atomic"
			}
			if jpath != want {
				t.Fatalf("journal path %q, want %q", jpath, want)
			}
			if st, err := os.Stat(jpath); err != nil || st.Size() != filestore.JournalSize {
				t.Fatalf("journal not preallocated: %v %v", st, err)
			}
			old := vpattern(64*512, 1)
			expectGood(t, "WRITE ATOMIC old", atomicWrite(t, d, 100, old))
			if p, err := filestore.JournalPending(jpath); err != nil || p {
				t.Fatalf("record not marked applied after a normal write: %v %v", p, err)
			}
			// Crash after the journal step: the data file still holds old.
			fileStore(d).StopAfterJournal(func() bool { return true })
			neu := vpattern(64*512, 2)
			expectSense(t, "stopped", atomicWrite(t, d, 100, neu), scsi.KeyMediumError, scsi.ASCWriteError)
			if !bytes.Equal(readBlocks(t, d, 100, 64), old) {
				t.Fatal("data changed before the journal was replayed")
			}
			if p, err := filestore.JournalPending(jpath); err != nil || !p {
				t.Fatalf("no pending record after the journal step: %v %v", p, err)
			}
			d.Close()
			d2, err := importFile(context.Background(), data, meta, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			defer d2.Close()
			if !bytes.Equal(readBlocks(t, d2, 100, 64), neu) {
				t.Error("the journaled write was not replayed")
			}
			if p, err := filestore.JournalPending(jpath); err != nil || p {
				t.Errorf("record still pending after replay: %v %v", p, err)
			}
			// Later writes to the range survive the next import.
			expectGood(t, "WRITE (16)", exec(t, d2, req{cdb: cdb16(scsi.OpWrite16, 0, 100, 1), dir: scsi.DirWrite, expLen: 512, data: vpattern(512, 3)}))
			d2.Close()
			d3, err := importFile(context.Background(), data, meta, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			defer d3.Close()
			if !bytes.Equal(readBlocks(t, d3, 100, 1), vpattern(512, 3)) {
				t.Error("an applied record was replayed again")
			}
			if seq := fileStore(d3).JournalSeq(); d3.atomicW == nil || seq < 2 {
				t.Errorf("sequence number not kept: %d", seq)
			}
		})
	}
}

func TestAtomicJournalTornIgnored(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(rec []byte)
	}{
		{"data", func(rec []byte) { rec[filestore.JournalDataOff+10] ^= 0xff }},
		{"header", func(rec []byte) { rec[24] ^= 1 }},
		{"magic", func(rec []byte) { rec[0] = 'X' }},
		{"length", func(rec []byte) { rec[34] = 0xff }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, data, _ := journalLU(t, false)
			old := vpattern(8*512, 4)
			expectGood(t, "WRITE ATOMIC old", atomicWrite(t, d, 8, old))
			off := d.byteOff(8)
			guid := d.GUID()
			fs := fileStore(d)
			jpath := fileStore(d).JournalPath()
			d.Close()
			// A record as the journal step writes it, then damaged.
			neu := vpattern(8*512, 5)
			rec := fs.JournalRecord(9, guid, off, neu)
			tc.corrupt(rec)
			if err := writeAtFile(jpath, rec); err != nil {
				t.Fatal(err)
			}
			d2, err := importFile(context.Background(), data, "", quietLog())
			if err != nil {
				t.Fatal(err)
			}
			defer d2.Close()
			if !bytes.Equal(readBlocks(t, d2, 8, 8), old) {
				t.Error("a torn record was replayed")
			}
			if d2.atomicW == nil {
				t.Error("WRITE ATOMIC off after a torn record")
			}
		})
	}
}

// A valid record written by hand (another LU's record is ignored).
func TestAtomicJournalHandRecord(t *testing.T) {
	d, data, _ := journalLU(t, false)
	off := d.byteOff(3)
	guid := d.GUID()
	fs := fileStore(d)
	jpath := fileStore(d).JournalPath()
	d.Close()
	neu := vpattern(2*512, 6)
	write := func(g [16]byte) {
		rec := fs.JournalRecord(1, g, off, neu)
		if err := writeAtFile(jpath, rec); err != nil {
			t.Fatal(err)
		}
	}
	other := guid
	other[15] ^= 1
	write(other)
	d2, err := importFile(context.Background(), data, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(readBlocks(t, d2, 3, 2), neu) {
		t.Error("another LU's record was replayed")
	}
	d2.Close()
	write(guid)
	d3, err := importFile(context.Background(), data, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Close()
	if !bytes.Equal(readBlocks(t, d3, 3, 2), neu) {
		t.Error("a valid record was not replayed")
	}
}

func TestAtomicJournalMissingRecreated(t *testing.T) {
	d, data, _ := journalLU(t, false)
	jpath := fileStore(d).JournalPath()
	d.Close()
	if err := os.Remove(jpath); err != nil {
		t.Fatal(err)
	}
	d2, err := importFile(context.Background(), data, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if _, err := os.Stat(jpath); err != nil || d2.cmds.lookup(scsi.OpWriteAtomic16, -1) == nil {
		t.Errorf("journal not recreated: %v", err)
	}
}

func TestAtomicJournalConcurrent(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				lba := uint64((g*20 + i) % 16 * 16)
				p := bytes.Repeat([]byte{byte(g*20 + i + 1)}, 16*512)
				r := exec(t, d, req{cdb: writeAtomicCDB(0, lba, 16), dir: scsi.DirWrite, expLen: uint32(len(p)), data: p})
				if r.status != scsi.StatusGood {
					t.Errorf("WRITE ATOMIC status %#x", r.status)
					return
				}
				// A read sees one whole write, never a mix.
				got := exec(t, d, req{cdb: cdb16(scsi.OpRead16, 0, lba, 16), dir: scsi.DirRead, expLen: 16 * 512}).data
				if len(got) != 16*512 || !bytes.Equal(got, bytes.Repeat(got[:1], len(got))) {
					t.Errorf("torn read at %d", lba)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p, err := filestore.JournalPending(fileStore(d).JournalPath()); err != nil || p {
		t.Errorf("record pending after concurrent writes: %v %v", p, err)
	}
	lockIdle(t, d)
}

func writeAtFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, 0)
	return errors.Join(err, f.Close())
}
