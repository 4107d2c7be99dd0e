package fdstore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A read of data just written comes from the page cache: ReadAtNoWait
// answers it without waiting and with the right bytes. Past the end it
// reports "not done" and leaves the error to ReadAt.
func TestReadAtNoWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lu.img")
	want := bytes.Repeat([]byte("costar-nowait-"), 2048)[:16384]
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make([]byte, 4096)
	done, err := b.ReadAtNoWait(got, 8192)
	if err != nil {
		t.Fatal(err)
	}
	if !done {
		if b.noNoWait.Load() {
			t.Skip("this kernel or file system refuses RWF_NOWAIT reads")
		}
		t.Fatal("a page-cache read reported as one that would wait")
	}
	if !bytes.Equal(got, want[8192:12288]) {
		t.Error("ReadAtNoWait returned the wrong bytes")
	}
	if done, err := b.ReadAtNoWait(got, 16384); done || err != nil {
		t.Errorf("past the end: done %v, err %v; want false, nil", done, err)
	}
	if !b.NoWait() {
		t.Error("NoWait false after a successful RWF_NOWAIT read")
	}
	direct := &FD{fd: b.fd, direct: true}
	if done, err := direct.ReadAtNoWait(got, 0); done || err != nil {
		t.Errorf("O_DIRECT: done %v, err %v; want false, nil (always the waiting path)", done, err)
	}
	if direct.NoWait() {
		t.Error("O_DIRECT: NoWait true")
	}
}
