package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/costar-project/costar/internal/blockpat"
)

// writeOptions drive the workload on the kernel initiator's disk.
type writeOptions struct {
	dev        string // /dev/sdX of the LU
	dm         string // the dm-log-writes device name (dmsetup message ... mark)
	mode       string // sync | fua | wcd
	rounds     int
	par        int    // writes in flight per round
	region     uint64 // bytes of the LU used from sector 0
	sectorSize uint64 // the LU's logical block size
}

// unit is the alignment and size step of the workload's writes (O_DIRECT
// on a 4 KiB-page kernel; each write still covers several LU sectors).
const unit = 4096

// workload writes rounds of par concurrent O_DIRECT writes, makes them
// durable the way mode says, then puts a mark into the log and a line
// into the journal. Every write's sectors carry (sector, seq).
func workload(ctx context.Context, o writeOptions, journal io.Writer) (writes, marks int, err error) {
	flags := unix.O_RDWR | unix.O_DIRECT
	if o.mode == "fua" {
		flags |= unix.O_DSYNC // O_DIRECT + O_DSYNC: the block layer sends FUA writes
	}
	fd, err := unix.Open(o.dev, flags, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", o.dev, err)
	}
	defer unix.Close(fd)
	enc := json.NewEncoder(journal)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	units := o.region / unit
	perUnit := unit / o.sectorSize
	var seq uint64
	bufs := make([][]byte, o.par)
	for i := range bufs {
		bufs[i] = alignedBuf(8 * unit)
	}
	for round := 0; round < o.rounds; round++ {
		if ctx.Err() != nil {
			return writes, marks, ctx.Err()
		}
		type ext struct{ u, n uint64 }
		var exts []ext
		taken := map[uint64]bool{}
	pick:
		for len(exts) < o.par {
			n := 1 + r.Uint64N(8)
			u := r.Uint64N(units - n + 1)
			for i := u; i < u+n; i++ {
				if taken[i] {
					continue pick
				}
			}
			for i := u; i < u+n; i++ {
				taken[i] = true
			}
			exts = append(exts, ext{u, n})
		}
		var wg sync.WaitGroup
		errs := make([]error, len(exts))
		done := make([]journalWrite, len(exts))
		for i, x := range exts {
			seq++
			jw := journalWrite{Seq: seq, Sector: x.u * perUnit, N: x.n * perUnit}
			buf := bufs[i][:x.n*unit]
			for s := uint64(0); s < jw.N; s++ {
				blockpat.Fill(buf[s*o.sectorSize:(s+1)*o.sectorSize], jw.Sector+s, seq, uint32(round))
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := unix.Pwrite(fd, buf, int64(jw.Sector*o.sectorSize))
				if err == nil && n != len(buf) {
					err = fmt.Errorf("short write %d of %d", n, len(buf))
				}
				errs[i], done[i] = err, jw
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				return writes, marks, fmt.Errorf("round %d write %d: %w", round, i, err)
			}
			if err := enc.Encode(journalEntry{W: &done[i]}); err != nil {
				return writes, marks, err
			}
			writes++
		}
		if o.mode == "sync" {
			if err := unix.Fdatasync(fd); err != nil { // SYNCHRONIZE CACHE
				return writes, marks, fmt.Errorf("round %d fdatasync: %w", round, err)
			}
		}
		name := fmt.Sprintf("costar-%s-%d", o.mode, round)
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := exec.CommandContext(mctx, "dmsetup", "message", o.dm, "0", "mark", name).CombinedOutput()
		cancel()
		if err != nil {
			return writes, marks, fmt.Errorf("dmsetup message %s mark: %w: %s", o.dm, err, out)
		}
		if err := enc.Encode(journalEntry{M: name}); err != nil {
			return writes, marks, err
		}
		marks++
	}
	return writes, marks, nil
}

// alignedBuf returns n bytes aligned for O_DIRECT.
func alignedBuf(n int) []byte {
	b := make([]byte, n+unit)
	off := 0
	if rem := int(uintptrOf(b) % unit); rem != 0 {
		off = unit - rem
	}
	return b[off : off+n : off+n]
}
