package lu

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/costar-project/costar/stmf"
)

// withoutAtomicWrites is a file LU created with NoAtomicWrites.
func withoutAtomicWrites(t *testing.T) *Device {
	t.Helper()
	d, err := Create(context.Background(), Config{DataFile: filepath.Join(t.TempDir(), "lu.img"), Size: 1 << 20, NoAtomicWrites: true},
		&GUIDGenerator{HostID: HostIDFrom32(1)}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// tableVariants are LUs whose tables differ (thin, thick, no atomic writes).
func tableVariants(t *testing.T) map[string]*Device {
	return map[string]*Device{
		"thick":     newThinDisk(t, thinOpts{}),
		"thin":      newThinDisk(t, thinOpts{thin: true}),
		"no atomic": withoutAtomicWrites(t),
	}
}

// TestCommandTableComplete: no row leaves a class undecided, and the
// fields agree with each other.
func TestCommandTableComplete(t *testing.T) {
	for _, c := range commandTable {
		name := func() string { return fmt.Sprintf("opcode %#x", c.op) }
		if c.lock == lockUnset || c.resv == resvUnset || c.alua&aluaActive == 0 {
			t.Errorf("%s SA %d: lock %d, reservation %d, ALUA %b: undecided", name(), c.sa, c.lock, c.resv, c.alua)
		}
		if c.resv == resvUnlessHarmless && c.harmless == nil {
			t.Errorf("%s: resvUnlessHarmless without harmless", name())
		}
		switch c.lock {
		case lockRead, lockWrite, lockAtomic:
			if c.layout == layoutNone {
				t.Errorf("%s: range lock without a block layout", name())
			}
		}
		if c.inline && (c.layout < layout6 || c.layout > layout16 || (c.lock != lockRead && c.lock != lockWrite)) {
			t.Errorf("%s: inline but not a plain READ or WRITE", name())
		}
		if c.fn == nil && (c.usage != nil || c.timeout != 0 || c.inline) {
			t.Errorf("%s: not implemented but listed as if it were", name())
		}
	}
}

// TestCommandTable checks every LU's table as REPORT SUPPORTED OPERATION
// CODES and dispatch use it: one row per opcode/service action, usage
// data of the CDB's length starting with the opcode, service actions
// exactly where dispatch expects them, a timeout for each.
func TestCommandTable(t *testing.T) {
	for name, d := range tableVariants(t) {
		seen := map[[2]int]bool{}
		for _, c := range d.cmds.rows {
			key := [2]int{int(c.op), c.sa}
			if seen[key] {
				t.Errorf("%s: opcode %#x SA %d listed twice", name, c.op, c.sa)
			}
			seen[key] = true
			if c.fn == nil {
				continue
			}
			if len(c.usage) != c.cdbLen || c.usage[0] != c.op {
				t.Errorf("%s: opcode %#x: usage data % x for a %d-byte CDB", name, c.op, c.usage, c.cdbLen)
			}
			if (c.sa >= 0) != d.cmds.hasServiceActions(c.op) {
				t.Errorf("%s: opcode %#x: service action %d inconsistent", name, c.op, c.sa)
			}
			if c.timeout == 0 {
				t.Errorf("%s: opcode %#x: no timeout", name, c.op)
			}
		}
	}
}

// randomCDBs are CDBs of every row with random fields, plus random bytes.
func randomCDBs(d *Device, n int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for _, c := range d.cmds.rows {
		for i := 0; i < n; i++ {
			cdb := make([]byte, c.cdbLen)
			for j := range cdb {
				cdb[j] = byte(rng.Uint32())
			}
			if i%4 == 0 { // small counts and LBAs are the interesting ones
				for j := 2; j < len(cdb); j++ {
					cdb[j] &= 0x03
				}
			}
			cdb[0] = c.op
			if c.sa >= 0 {
				cdb[1] = cdb[1]&0xe0 | byte(c.sa)
			}
			out = append(out, cdb, cdb[:rng.IntN(len(cdb))])
		}
	}
	for i := 0; i < n*50; i++ {
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], rng.Uint64())
		binary.LittleEndian.PutUint64(b[8:], rng.Uint64())
		out = append(out, b[:1+rng.IntN(16)])
	}
	return out
}

// TestDecodeMatchesBefore: the range lock, the reservation classes and
// the inline decision read from the table answer exactly as the opcode
// switches they replaced (cmdtab_before_test.go).
func TestDecodeMatchesBefore(t *testing.T) {
	for name, d := range tableVariants(t) {
		for _, cdb := range randomCDBs(d, 200) {
			dec := d.cmds.decode(cdb)
			c := d.cmds.row(dec)
			kind, lo, hi := c.span(dec)
			bk, blo, bhi := lockRangeBefore(cdb)
			// UNMAP on a thick LU and WRITE ATOMIC without atomic writes
			// used to lock before failing INVALID COMMAND OPERATION CODE.
			if c == nil && bk != lockNone && cdb[0] != 0x42 && cdb[0] != 0x9c {
				t.Fatalf("%s: cdb % x: no row, but the old lock was %d", name, cdb, bk)
			}
			if c != nil && (kind != bk || kind != lockNone && (lo != blo || hi != bhi)) {
				t.Fatalf("%s: cdb % x: lock %d [%d, %d), before %d [%d, %d)", name, cdb, kind, lo, hi, bk, blo, bhi)
			}
			if c != nil && c.fn != nil && len(cdb) >= c.cdbLen {
				cls, s2 := c.classify(cdb)
				bcls, bs2 := classifyBefore(cdb)
				if cls != bcls || s2 != bs2 {
					t.Fatalf("%s: cdb % x: class %d/%v, before %d/%v", name, cdb, cls, s2, bcls, bs2)
				}
			}
			task := stmf.NewTask(&fakeTransport{})
			task.CDB = cdb
			task.LUDecoded = dec
			want := quickBefore(cdb, d.bsShift, d.wcd.Load())
			if len(cdb) >= 2 && cdb[0] == 0x0a && cdb[1]&0x08 != 0 {
				want = len(cdb) >= 6 && quickBefore(append([]byte{cdb[0], 0}, cdb[2:]...), d.bsShift, d.wcd.Load()) // WRITE (6) has no FUA bit
			}
			if got := d.Quick(task); got != want {
				t.Fatalf("%s: cdb % x: Quick %v, before %v", name, cdb, got, want)
			}
		}
	}
}
