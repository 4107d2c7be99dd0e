package integration

import (
	"context"
	"encoding/binary"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// qdLoad keeps depth 4 KiB reads in flight on one LUN of one session and
// counts the ones that finish GOOD.
type qdLoad struct {
	done atomic.Uint64
	errs atomic.Uint64
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func startQD(ctx context.Context, s *initiator.Session, lun uint64, depth int) *qdLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &qdLoad{stop: cancel}
	for w := 0; w < depth; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			cdb := make([]byte, 10)
			cdb[0], cdb[8] = 0x28, 8 // READ(10), 8 x 512-byte blocks
			for i := 0; ctx.Err() == nil; i++ {
				binary.BigEndian.PutUint32(cdb[2:], uint32((w*997+i*8)%(64<<11-8)))
				r, err := s.Do(ctx, lun, cdb, nil, 4096)
				switch {
				case ctx.Err() != nil:
					return
				case err != nil || r.Status != initiator.StatusGood:
					l.errs.Add(1)
				default:
					l.done.Add(1)
				}
			}
		}(w)
	}
	return l
}

func (l *qdLoad) end() { l.stop(); l.wg.Wait() }

// rates measures the IOPS of each load over the same window.
func rates(window time.Duration, loads ...*qdLoad) []float64 {
	before := make([]uint64, len(loads))
	for i, l := range loads {
		before[i] = l.done.Load()
	}
	start := time.Now()
	time.Sleep(window)
	el := time.Since(start).Seconds()
	out := make([]float64, len(loads))
	for i, l := range loads {
		out[i] = float64(l.done.Load()-before[i]) / el
	}
	return out
}

// TestQoSLimitHoldsAndChangesLive drives two LUs of one target at QD32
// each from two sessions, in one run: the second LU alone; both LUs
// unlimited (the noisy neighbour); the demo LU limited to 2000 IOPS by
// modify-lu while the load runs; raised to 4000; removed. The limited LU
// must run at the limit ± 5 %. "Keeps its throughput" is, numerically:
// next to its limited neighbour the unlimited LU keeps at least 60 % of
// the rate it reached alone (the neighbour's 2000 IOPS are about a tenth
// of this box's rate; the rest is margin for a shared 2-core CI machine),
// and more than next to the same neighbour unlimited. No command may fail:
// held commands wait, none is answered BUSY or TASK SET FULL.
func TestQoSLimitHoldsAndChangesLive(t *testing.T) {
	ctx := harness.Context(t, testTimeout)
	dir := harness.TempDir(t, "stmfd-qos")
	d := startDaemon(ctx, t, dir, "--demo-size", "64M")
	other := d.CreateLU("-s", "64M", filepath.Join(dir, "other.img"))
	d.OK("stmfadm", "add-view", "-n", "1", other)
	demo := strings.TrimSpace(strings.TrimPrefix(strings.Split(d.OK("stmfadm", "list-lu"), "\n")[0], "LU Name: "))

	if plain := d.OK("stmfadm", "list-lu", "-v", demo); strings.Contains(plain, "QoS") {
		t.Fatalf("list-lu -v of an unlimited LU shows QoS lines:\n%s", plain)
	}
	if _, errOut, code := d.Run("", "stmfadm", "modify-lu", "-p", "qos-iops=-1", demo); code == 0 {
		t.Errorf("qos-iops=-1 accepted")
	} else {
		t.Logf("qos-iops=-1: %s", strings.TrimSpace(errOut))
	}

	s0 := harness.Login(ctx, t, d.Portal, demoIQN, testInitiator, 1)
	s1 := harness.Login(ctx, t, d.Portal, demoIQN, testInitiator, 2)
	harness.Ready(ctx, t, s0, 0)
	harness.Ready(ctx, t, s1, 1)

	// Other test packages share the CPUs with this one (go test runs
	// packages in parallel), so the three rates are measured back to back
	// in one round, and a round that lands on a busy moment is measured
	// again (at most three): the first round that shows the neighbour
	// kept its throughput counts. A gate that blocked the neighbour or
	// burned the CPU fails every round.
	l1 := startQD(ctx, s1, 1, 32)
	var l0 *qdLoad
	var failed uint64 // commands failed by loads already ended
	var alone float64
	var noisy, limited []float64
	for round := 1; ; round++ {
		time.Sleep(300 * time.Millisecond)
		alone = rates(1500*time.Millisecond, l1)[0]
		l0 = startQD(ctx, s0, 0, 32)
		time.Sleep(300 * time.Millisecond)
		noisy = rates(1500*time.Millisecond, l0, l1)
		d.OK("stmfadm", "modify-lu", "-p", "qos-iops=2000", demo)
		if v := d.OK("stmfadm", "list-lu", "-v", demo); !strings.Contains(v, "QoS IOPS Limit    : 2000\n") {
			t.Fatalf("list-lu -v after modify-lu -p qos-iops=2000:\n%s", v)
		}
		time.Sleep(300 * time.Millisecond)
		limited = rates(2*time.Second, l0, l1)
		t.Logf("round %d: LU 1 alone %.0f IOPS; next to LU 0 unlimited %.0f (LU 0 %.0f); next to LU 0 at qos-iops=2000 %.0f (%.0f %% of alone; LU 0 %.0f)",
			round, alone, noisy[1], noisy[0], limited[1], 100*limited[1]/alone, limited[0])
		if round == 3 || limited[1] >= 0.6*alone && limited[1] > noisy[1] {
			break
		}
		d.OK("stmfadm", "modify-lu", "-p", "qos-iops=0", demo)
		l0.end()
		failed += l0.errs.Load()
	}
	l1.end()
	failed += l1.errs.Load()
	within(t, "limit 2000", limited[0], 2000)
	if limited[1] < 0.6*alone || limited[1] <= noisy[1] {
		t.Errorf("the unlimited LU ran %.0f IOPS next to its limited neighbour: want >= 60 %% of %.0f (alone) and more than %.0f (next to it unlimited)",
			limited[1], alone, noisy[1])
	}

	d.OK("stmfadm", "modify-lu", "-p", "qos-iops=4000", demo)
	time.Sleep(300 * time.Millisecond)
	raised := rates(3*time.Second, l0)[0]
	t.Logf("after modify-lu -p qos-iops=4000: %.0f IOPS", raised)
	// A -race build on a busy 2-core box may not reach 4000 IOPS at all:
	// then only check that the rate followed the raise.
	fast := alone >= 6000
	if fast {
		within(t, "limit 4000", raised, 4000)
	} else if raised < 1.5*limited[0] || raised > 4200 {
		t.Errorf("raised to 4000 on a box that did %.0f IOPS alone: %.0f IOPS, want above %.0f and at most 4200", alone, raised, 1.5*limited[0])
	}

	d.OK("stmfadm", "modify-lu", "-p", "qos-iops=0", demo)
	time.Sleep(300 * time.Millisecond)
	free := rates(time.Second, l0)[0]
	l0.end()
	t.Logf("after qos-iops=0: %.0f IOPS", free)
	if fast && free < 4400 {
		t.Errorf("qos-iops=0 left the LU at %.0f IOPS", free)
	}
	if v := d.OK("stmfadm", "list-lu", "-v", demo); strings.Contains(v, "QoS") {
		t.Errorf("list-lu -v still shows QoS after qos-iops=0:\n%s", v)
	}
	if e := failed + l0.errs.Load(); e != 0 {
		t.Errorf("%d commands failed (a held command must wait, never fail)", e)
	}

	// The limits are kept in the daemon's state: a restart keeps them.
	d.OK("stmfadm", "modify-lu", "-p", "qos-iops=3000", "-p", "qos-mbps=100", demo)
	if code, _ := d.Stop(); code != 0 {
		t.Fatalf("stmfd exited %d", code)
	}
	d = startDaemon(ctx, t, dir, "--demo-size", "64M")
	v := d.OK("stmfadm", "list-lu", "-v", demo)
	if !strings.Contains(v, "QoS IOPS Limit    : 3000\n") || !strings.Contains(v, "QoS MB/s Limit    : 100 MiB/s\n") {
		t.Errorf("after a restart, list-lu -v shows:\n%s", v)
	}
}

func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 0.05*want {
		t.Errorf("%s: %.0f IOPS, want %.0f ± 5 %%", what, got, want)
	}
}
