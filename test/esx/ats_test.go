package esx

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// counterBlock is the content of the ATS counter block holding v: v
// big-endian in the first 8 bytes, then a pattern derived from v, so a
// torn or foreign write shows.
func counterBlock(v uint64, bs int) []byte {
	b := make([]byte, bs)
	binary.BigEndian.PutUint64(b, v)
	for i := 8; i < bs; i++ {
		b[i] = byte(v*131 + uint64(i)*7 + 1)
	}
	return b
}

// decodeCounter returns the counter a block holds, or an error when the
// block is not exactly counterBlock(v).
func decodeCounter(b []byte) (uint64, error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("counter block of %d bytes", len(b))
	}
	v := binary.BigEndian.Uint64(b)
	if !bytes.Equal(b, counterBlock(v, len(b))) {
		return v, fmt.Errorf("counter block holding %d is torn or overwritten: % x...", v, b[:min(len(b), 32)])
	}
	return v, nil
}

// atsStats is what one incrementing session saw.
type atsStats struct {
	wrote       []uint64 // counter values this session's successful ATS wrote
	miscompares int
}

// TestATSAtomicUnderConcurrentWriters: several sessions increment one
// counter block with read + COMPARE AND WRITE while plain writers hammer
// the blocks around it (and elsewhere). No increment may be lost (the
// final counter equals the number of successful ATS and every value
// 1..final was written exactly once), the block is never torn, and every
// MISCOMPARE is real: the counter had moved on, and INFORMATION points
// into the counter bytes.
func TestATSAtomicUnderConcurrentWriters(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	dir := harness.TempDir(t, "esx")
	d := suite.Start(ctx, t, filepath.Join(dir, "state"), harness.Options{})
	lu := d.CreateLU(harness.Backing(t, dir, "lu", 64*mib))
	d.OK("stmfadm", "add-view", lu)
	d.OK("itadm", "create-target", "-n", tgtDefault)

	const (
		incrementers = 4
		writers      = 2
		perSession   = 500              // successful increments each session aims for
		runFor       = 20 * time.Second // and at most this long
		counterLBA   = 1000
	)
	setup := harness.Login(ctx, t, d.Portal, tgtDefault, hostA, 0)
	harness.Ready(ctx, t, setup, 0)
	nblocks, bs32, err := setup.Capacity(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	bs := int(bs32)
	harness.Good(ctx, t, setup, 0, initiator.Write16(counterLBA, 1), counterBlock(0, bs), 0)

	// wctx only ends the loops: every command runs under ctx, so none is
	// abandoned while the target may still execute it.
	wctx, stop := context.WithTimeout(ctx, runFor)
	defer stop()
	var (
		wg        sync.WaitGroup
		errMu     sync.Mutex
		errs      []string
		plain     atomic.Int64
		stats     = make([]atsStats, incrementers)
		remaining atomic.Int32
	)
	report := func(format string, args ...any) {
		errMu.Lock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
		errMu.Unlock()
		stop()
	}
	remaining.Store(incrementers)

	// Plain writers: 4 KiB writes that end right before the counter block,
	// start right after it, or land anywhere else on the LU.
	for w := range writers {
		s := harness.Login(ctx, t, d.Portal, tgtDefault, hostB, byte(10+w))
		harness.Ready(ctx, t, s, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			n := uint32(4096 / bs)
			data := bytes.Repeat([]byte{0xa0 + byte(w)}, int(n)*bs)
			for i := 0; wctx.Err() == nil && remaining.Load() > 0 && i < 1_000_000; i++ {
				var lba uint64
				switch i % 3 {
				case 0:
					lba = counterLBA - uint64(n)
				case 1:
					lba = counterLBA + 1
				default:
					lba = rng.Uint64N(nblocks - uint64(n))
					if lba+uint64(n) > counterLBA && lba <= counterLBA {
						lba = counterLBA + 1 + uint64(n)
					}
				}
				r, err := s.Do(ctx, 0, initiator.Write16(lba, n), data, 0)
				if err != nil {
					report("writer %d: %v", w, err)
					return
				}
				if r.Status != initiator.StatusGood {
					report("writer %d: WRITE at %d: %v", w, lba, r)
					return
				}
				plain.Add(1)
			}
		}()
	}

	for i := range incrementers {
		s := harness.Login(ctx, t, d.Portal, tgtDefault, hostA, byte(1+i))
		harness.Ready(ctx, t, s, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer remaining.Add(-1)
			st := &stats[i]
			for len(st.wrote) < perSession && wctx.Err() == nil {
				r, err := s.Do(ctx, 0, initiator.Read16(counterLBA, 1), nil, uint32(bs))
				if err != nil || r.Status != initiator.StatusGood {
					report("session %d: READ: %v %v", i, r, err)
					return
				}
				v, err := decodeCounter(r.Data)
				if err != nil {
					report("session %d: %v", i, err)
					return
				}
				out := append(counterBlock(v, bs), counterBlock(v+1, bs)...)
				r, err = s.Do(ctx, 0, initiator.CompareAndWrite(counterLBA, 1), out, 0)
				if err != nil {
					report("session %d: COMPARE AND WRITE: %v", i, err)
					return
				}
				switch {
				case r.Status == initiator.StatusGood:
					st.wrote = append(st.wrote, v+1)
				case r.Is(initiator.KeyMiscompare, 0x1d, 0x00):
					st.miscompares++
					sn, _ := r.SenseData()
					if !sn.InfoValid || sn.Info >= 8 {
						report("session %d: MISCOMPARE of %d with INFORMATION %d (valid %v): the first difference must be in the counter bytes", i, v, sn.Info, sn.InfoValid)
						return
					}
					// The counter only grows: if it still reads v, the
					// miscompare was false.
					r2, err := s.Do(ctx, 0, initiator.Read16(counterLBA, 1), nil, uint32(bs))
					if err != nil || r2.Status != initiator.StatusGood {
						report("session %d: READ after miscompare: %v %v", i, r2, err)
						return
					}
					if now, err := decodeCounter(r2.Data); err != nil || now <= v {
						report("session %d: false MISCOMPARE: compared %d, the block holds %d (%v)", i, v, now, err)
						return
					}
				default:
					report("session %d: COMPARE AND WRITE of %d: %v", i, v, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d problem(s):\n%s", len(errs), strings.Join(errs, "\n"))
	}

	r := harness.Good(ctx, t, setup, 0, initiator.Read16(counterLBA, 1), nil, uint32(bs))
	final, err := decodeCounter(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	var all []uint64
	misc := 0
	for _, st := range stats {
		all = append(all, st.wrote...)
		misc += st.miscompares
	}
	slices.Sort(all)
	t.Logf("%d successful ATS (%d miscompares) from %d sessions, %d plain 4 KiB writes alongside; counter %d",
		len(all), misc, incrementers, plain.Load(), final)
	if final != uint64(len(all)) {
		t.Fatalf("lost update: counter %d after %d successful COMPARE AND WRITE", final, len(all))
	}
	for i, v := range all {
		if v != uint64(i+1) {
			t.Fatalf("value %d written twice or never (sorted values around %d: %v)", i+1, i, all[max(0, i-2):min(len(all), i+3)])
		}
	}
	if len(all) == 0 || plain.Load() == 0 {
		t.Fatalf("nothing ran: %d ATS, %d writes", len(all), plain.Load())
	}
}
