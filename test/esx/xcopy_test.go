package esx

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// extendedCopy builds EXTENDED COPY (LID1) with its parameter list: two
// identification descriptors (E4h, NAA = the LU GUIDs) and block to block
// segments copying blocks blocks from LBA 0 of src to LBA 0 of dst.
func extendedCopy(listID byte, src, dst []byte, blockLen uint32, blocks uint64) (cdb, params []byte) {
	cscd := func(guid []byte) []byte {
		d := make([]byte, 32)
		d[0] = 0xe4
		d[4], d[5], d[7] = 0x01, 0x03, 16 // binary, LU association, NAA, 16 bytes
		copy(d[8:24], guid)
		d[29], d[30], d[31] = byte(blockLen>>16), byte(blockLen>>8), byte(blockLen)
		return d
	}
	var segs []byte
	for done := uint64(0); done < blocks; {
		n := min(blocks-done, 0xffff)
		s := make([]byte, 28)
		s[0] = 0x02
		binary.BigEndian.PutUint16(s[2:4], 24)
		binary.BigEndian.PutUint16(s[4:6], 0) // source: CSCD 0
		binary.BigEndian.PutUint16(s[6:8], 1) // destination: CSCD 1
		binary.BigEndian.PutUint16(s[10:12], uint16(n))
		binary.BigEndian.PutUint64(s[12:20], done)
		binary.BigEndian.PutUint64(s[20:28], done)
		segs = append(segs, s...)
		done += n
	}
	params = make([]byte, 16)
	params[0] = listID // LIST ID USAGE 00b: hold the results for RECEIVE COPY RESULTS
	binary.BigEndian.PutUint16(params[2:4], 64)
	binary.BigEndian.PutUint32(params[8:12], uint32(len(segs)))
	params = append(params, cscd(src)...)
	params = append(params, cscd(dst)...)
	params = append(params, segs...)
	cdb = make([]byte, 16)
	cdb[0] = 0x83
	binary.BigEndian.PutUint32(cdb[10:14], uint32(len(params)))
	return cdb, params
}

// copyStatus runs RECEIVE COPY RESULTS (COPY STATUS) for listID and
// returns the copy manager status (0 = in progress) and the bytes done.
func copyStatus(ctx context.Context, t *testing.T, s *initiator.Session, listID byte) (status byte, bytesDone uint64, ok bool) {
	t.Helper()
	cdb := make([]byte, 16)
	cdb[0], cdb[1], cdb[2] = 0x84, 0x00, listID
	binary.BigEndian.PutUint32(cdb[10:14], 64)
	r := harness.Do(ctx, t, s, 0, cdb, nil, 64)
	if r.Status != initiator.StatusGood || len(r.Data) < 12 {
		return 0, 0, false
	}
	units := r.Data[7] // 0 = bytes, 1 = KiB, 2 = MiB, ...
	return r.Data[4] & 0x7f, uint64(binary.BigEndian.Uint32(r.Data[8:12])) << (10 * uint(units)), true
}

// TestAbortLongExtendedCopy: ABORT TASK of a running 512 MiB EXTENDED COPY
// between two LUs answers promptly with FUNCTION COMPLETE, the copy stops
// and never answers, and the session keeps working (including another
// copy).
func TestAbortLongExtendedCopy(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	dir := harness.TempDir(t, "esx")
	d := suite.Start(ctx, t, filepath.Join(dir, "state"), harness.Options{})
	const size = 512 * mib
	src := d.CreateLU(harness.Backing(t, dir, "src", size))
	dst := d.CreateLU(harness.Backing(t, dir, "dst", size))
	d.OK("stmfadm", "add-view", "-n", "0", src)
	d.OK("stmfadm", "add-view", "-n", "1", dst)
	d.OK("itadm", "create-target", "-n", tgtDefault)

	s := harness.Login(ctx, t, d.Portal, tgtDefault, hostA, 1)
	harness.Ready(ctx, t, s, 0)
	harness.Ready(ctx, t, s, 1)
	blocks, bs, err := s.Capacity(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Something to copy at the start of the source (the rest reads as zeros).
	harness.Good(ctx, t, s, 0, initiator.Write16(0, 8), make([]byte, 8*bs), 0)

	const listID = 0x42
	cdb, params := extendedCopy(listID, harness.GUIDBytes(t, src), harness.GUIDBytes(t, dst), bs, blocks)
	cp, err := s.Start(ctx, 0, cdb, params, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Abort only once the copy manager reports it running and moving data,
	// so the abort surely meets a running copy.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-cp.Done():
			r, err := cp.Wait(ctx)
			t.Fatalf("the %d MiB copy ended before it could be aborted: %v %v", size>>20, r, err)
		default:
		}
		st, done, ok := copyStatus(ctx, t, s, listID)
		if ok && st == 0 && done > 0 {
			t.Logf("copy in progress: %d MiB of %d done; aborting", done>>20, size>>20)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the copy never showed progress (status %d, %d bytes, ok %v)", st, done, ok)
		}
		time.Sleep(5 * time.Millisecond)
	}

	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	resp, err := s.AbortTask(actx, cp)
	cancel()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("ABORT TASK: no answer within 10s: %v", err)
	}
	t.Logf("ABORT TASK answered %d in %v", resp, took)
	if resp != initiator.TMFComplete {
		t.Fatalf("ABORT TASK of a running copy answered %d, want FUNCTION COMPLETE", resp)
	}

	// The aborted copy never answers, and it stops moving data.
	var last uint64
	for range 5 {
		select {
		case <-cp.Done():
			r, err := cp.Wait(ctx)
			t.Fatalf("the aborted EXTENDED COPY answered: %v %v", r, err)
		case <-time.After(500 * time.Millisecond):
		}
		st, done, ok := copyStatus(ctx, t, s, listID)
		if !ok {
			t.Fatal("RECEIVE COPY RESULTS failed after the abort")
		}
		if st == 0 {
			t.Logf("copy still winding down: %d MiB", done>>20)
			continue
		}
		if done >= uint64(size) {
			t.Fatalf("the aborted copy ran to the end (%d bytes, status %d)", done, st)
		}
		last = done
	}
	st, done, _ := copyStatus(ctx, t, s, listID)
	if st == 0 || done != last {
		t.Fatalf("the aborted copy is still running: status %d, %d bytes (was %d)", st, done, last)
	}
	t.Logf("aborted copy stopped after %d MiB of %d (copy manager status %d)", done>>20, size>>20, st)

	// The session keeps working, copies included.
	harness.Ready(ctx, t, s, 0)
	harness.Good(ctx, t, s, 0, initiator.Read16(0, 8), nil, 8*bs)
	harness.Good(ctx, t, s, 1, initiator.Write16(blocks-8, 8), make([]byte, 8*bs), 0)
	cdb, params = extendedCopy(listID+1, harness.GUIDBytes(t, src), harness.GUIDBytes(t, dst), bs, 2048)
	if r := harness.Do(ctx, t, s, 0, cdb, params, 0); r.Status != initiator.StatusGood {
		t.Fatalf("a small EXTENDED COPY after the abort: %v", r)
	}
	select {
	case <-cp.Done():
		r, err := cp.Wait(ctx)
		t.Fatalf("the aborted EXTENDED COPY answered late: %v %v", r, err)
	default:
	}
}
