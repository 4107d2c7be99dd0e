package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/costar-project/costar/lu/backing"
)

var _ backing.JournalReplayer = (*Store)(nil)

// fileBytes is the whole content of path ("" when it does not exist).
func fileBytes(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestJournalDeferredReplay: node A owns an LU and leaves its journal in
// some state; node B opens the same files with deferred replay (a standby
// in cluster mode). B's open leaves data and journal exactly as they were
// and B refuses atomic writes; once B recorded its fencing token (A is
// then fenced) ReplayJournal applies an unapplied record and skips one A
// marked applied, after which B's atomic writes work.
func TestJournalDeferredReplay(t *testing.T) {
	const off = 8192
	old := bytes.Repeat([]byte{1}, 4096)
	rec := bytes.Repeat([]byte{2}, 4096)
	later := bytes.Repeat([]byte{3}, 4096)
	crash := func(a *Store) error { // stopped after the journal step
		a.StopAfterJournal(func() bool { return true })
		if err := a.WriteAtomic(rec, off); !errors.Is(err, errJournalStopped) {
			return fmt.Errorf("stopped atomic write: %v", err)
		}
		return nil
	}
	cases := []struct {
		name      string
		sidecar   bool
		noJournal bool                 // A made no journal file
		owner     func(a *Store) error // A's last writes
		want      []byte               // at off after B's replay
		pending   bool                 // A left an unapplied record
	}{
		{name: "unmarked record is replayed", pending: true, want: rec, owner: crash},
		{name: "unmarked record is replayed (meta file)", sidecar: true, pending: true, want: rec, owner: crash},
		{name: "marked record is skipped", want: later, owner: func(a *Store) error {
			if err := a.WriteAtomic(rec, off); err != nil {
				return err
			}
			return a.WriteAt(later, off, true) // the owner's later plain write stays
		}},
		{name: "no journal yet", noJournal: true, want: old, owner: func(*Store) error { return nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			o := Options{DataFile: filepath.Join(dir, "lu.img"), Size: 1 << 20, Log: quietLog(), NoAtomicWrites: c.noJournal}
			if c.sidecar {
				o.MetaFile = filepath.Join(dir, "lu.meta")
			}
			a, err := Create(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if err := a.SaveMeta(newMeta("a", o.DataFile)); err != nil {
				t.Fatal(err)
			}
			if err := a.Fence(1); err != nil {
				t.Fatal(err)
			}
			if err := a.WriteAt(old, off, true); err != nil {
				t.Fatal(err)
			}
			if err := c.owner(a); err != nil {
				t.Fatalf("owner's writes: %v", err)
			}
			jpath := a.JournalPath()
			dataBefore, journalBefore := fileBytes(t, o.DataFile), fileBytes(t, jpath)
			if (journalBefore == "") != c.noJournal {
				t.Fatalf("journal file present: %v, want %v", journalBefore != "", !c.noJournal)
			}
			if !c.noJournal {
				if p, err := JournalPending(jpath); err != nil || p != c.pending {
					t.Fatalf("before B opens: record pending %v (%v), want %v", p, err, c.pending)
				}
			}

			b, err := OpenDeferred(ctx, o.DataFile, o.MetaFile, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.Caps().AtomicMax != maxAtomicBytes {
				t.Errorf("deferred store advertises atomic max %d, want %d", b.Caps().AtomicMax, maxAtomicBytes)
			}
			err = b.WriteAtomic(later, 0)
			if !errors.Is(err, errJournalNotReplayed) || !errors.Is(err, backing.ErrFenced) {
				t.Errorf("atomic write before the replay: %v, want the not-replayed (fenced) refusal", err)
			}
			if fileBytes(t, o.DataFile) != dataBefore {
				t.Error("a deferred open or refused atomic write changed the data file")
			}
			if fileBytes(t, jpath) != journalBefore {
				t.Error("a deferred open or refused atomic write changed (or created) the journal file")
			}

			// Takeover: B's token first, then the replay.
			if err := b.Fence(2); err != nil {
				t.Fatal(err)
			}
			if err := b.ReplayJournal(); err != nil {
				t.Fatalf("ReplayJournal: %v", err)
			}
			got := make([]byte, len(c.want))
			if err := b.ReadAt(got, off); err != nil || !bytes.Equal(got, c.want) {
				t.Fatalf("after the replay the range holds %x…, want %x… (%v)", got[:1], c.want[:1], err)
			}
			if pending, err := JournalPending(jpath); err != nil || pending {
				t.Fatalf("record pending after the replay: %v %v", pending, err)
			}
			if st, err := os.Stat(jpath); err != nil || st.Size() != journalSize {
				t.Fatalf("journal not preallocated by the replay: %v %v", st, err)
			}
			if !c.noJournal && b.JournalSeq() != 1 {
				t.Error("B did not take over the sequence number of the record on the medium")
			}
			neu := bytes.Repeat([]byte{4}, 512)
			if err := b.WriteAtomic(neu, 0); err != nil {
				t.Fatalf("atomic write after the replay: %v", err)
			}
			// A second takeover replays again and finds nothing to do.
			if err := b.ReplayJournal(); err != nil {
				t.Fatalf("second ReplayJournal: %v", err)
			}
			if err := b.ReadAt(got[:512], 0); err != nil || !bytes.Equal(got[:512], neu) {
				t.Fatalf("B's atomic write lost by a second replay (%v)", err)
			}
		})
	}
}

// A read-only deferred store only checks the journal, on ReplayJournal: a
// pending record it cannot replay is an error there, not at open.
func TestJournalDeferredReadOnly(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root opens a 0400 file read-write")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lu.img")
	a, err := Create(ctx, Options{DataFile: path, Size: 1 << 20, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SaveMeta(newMeta("a", path)); err != nil {
		t.Fatal(err)
	}
	a.StopAfterJournal(func() bool { return true })
	if err := a.WriteAtomic(bytes.Repeat([]byte{9}, 512), 0); !errors.Is(err, errJournalStopped) {
		t.Fatal(err)
	}
	a.Close()
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	b, err := OpenDeferred(ctx, path, "", quietLog())
	if err != nil {
		t.Fatalf("deferred read-only open refused: %v", err)
	}
	defer b.Close()
	if !b.Caps().ReadOnly || b.Caps().AtomicMax != 0 {
		t.Fatalf("caps %+v: want read-only without atomic writes", b.Caps())
	}
	if err := b.ReplayJournal(); err == nil {
		t.Fatal("ReplayJournal on a read-only LU with a pending record: no error")
	}
}
