package lu

import (
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

func TestQuick(t *testing.T) {
	d := newTestDisk(t, diskOpts{}) // 512-byte blocks, write-back
	wt := newTestDisk(t, diskOpts{wcd: true})
	for _, c := range []struct {
		name string
		d    *Device
		cdb  []byte
		want bool
	}{
		{"READ 10 4 KiB", d, cdb10(scsi.OpRead10, 0, 0, 8), true},
		{"WRITE 16 64 KiB", d, cdb16(scsi.OpWrite16, 0, 0, 128), true},
		{"READ 10 over 64 KiB", d, cdb10(scsi.OpRead10, 0, 0, 129), false},
		{"READ 6 length 0 = 256 blocks", d, cdb6(scsi.OpRead6, 0, 0), false},
		{"WRITE 10 FUA", d, cdb10(scsi.OpWrite10, 0x08, 0, 8), false},
		{"WRITE 10 write-through LU", wt, cdb10(scsi.OpWrite10, 0, 0, 8), false},
		{"READ 10 write-through LU", wt, cdb10(scsi.OpRead10, 0, 0, 8), true},
		{"SYNCHRONIZE CACHE", d, cdb10(scsi.OpSyncCache10, 0, 0, 0), false},
		{"short READ 16", d, []byte{scsi.OpRead16, 0, 0}, false},
		{"empty", d, nil, false},
	} {
		task := stmf.NewTask(&fakeTransport{})
		task.CDB = c.cdb
		c.d.Admit(task)
		if got := c.d.Quick(task); got != c.want {
			t.Errorf("%s: Quick = %v, want %v", c.name, got, c.want)
		}
	}
}
