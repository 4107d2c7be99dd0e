package lu

import (
	"bytes"
	"testing"
	"time"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/memstore"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// A task the transport may run inline although its goroutine is busy
// (InlineNoWait): Quick accepts only reads, and a read the store cannot
// answer without waiting is finished on another goroutine with the same
// data and exactly one completion.
func TestInlineNoWait(t *testing.T) {
	st := memstore.New(1<<20, 512, backing.Caps{})
	d := newMemDisk(t, st, Config{})
	pattern := bytes.Repeat([]byte{0xc5, 0x3a}, 2048)
	if r := exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, 16, 8), dir: scsi.DirWrite, expLen: 4096, data: pattern}); r.status != scsi.StatusGood {
		t.Fatalf("write: status %v", r.status)
	}
	for _, tc := range []struct {
		name      string
		cdb       []byte
		dir       scsi.DataDir
		miss      bool
		wantQuick bool
	}{
		{"read from the cache", cdb10(scsi.OpRead10, 0, 16, 8), scsi.DirRead, false, true},
		{"read that would wait", cdb10(scsi.OpRead10, 0, 16, 8), scsi.DirRead, true, true},
		{"write", cdb10(scsi.OpWrite10, 0, 16, 8), scsi.DirWrite, false, false},
		{"synchronize cache", cdb10(scsi.OpSyncCache10, 0, 0, 0), scsi.DirNone, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st.SetNoWaitMiss(tc.miss)
			defer st.SetNoWaitMiss(false)
			tr := &fakeTransport{data: pattern}
			task := stmf.NewTask(tr)
			task.CDB, task.Dir, task.ExpectedLen = tc.cdb, tc.dir, 4096
			task.Inline, task.InlineNoWait = true, true
			d.Admit(task)
			if got := d.Quick(task); got != tc.wantQuick {
				t.Fatalf("Quick = %v, want %v", got, tc.wantQuick)
			}
			if !tc.wantQuick {
				return
			}
			d.Execute(task)
			deadline := time.Now().Add(5 * time.Second)
			for tr.completions() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(10 * time.Millisecond) // a second completion would show now
			if n := tr.completions(); n != 1 {
				t.Fatalf("%d completions, want 1", n)
			}
			tr.mu.Lock()
			r := tr.results[0]
			tr.mu.Unlock()
			if r.Status != scsi.StatusGood || !bytes.Equal(r.Data, pattern) {
				t.Errorf("status %v, %d bytes (match %v)", r.Status, len(r.Data), bytes.Equal(r.Data, pattern))
			}
			if task.InlineNoWait == tc.miss {
				t.Errorf("InlineNoWait %v after the run; want it cleared only for the fallback", task.InlineNoWait)
			}
			if r.Release != nil {
				r.Release()
			}
		})
	}
}
