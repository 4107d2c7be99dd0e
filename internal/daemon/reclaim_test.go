package daemon

import (
	"log/slog"
	"testing"
)

func TestReclaimerFreesWhenIdleAfterWork(t *testing.T) {
	const mib = 1 << 20
	type tick struct {
		sessions  int
		allocated uint64 // cumulative
		free      bool
	}
	for _, tc := range []struct {
		name  string
		ticks []tick
	}{
		{"idle from the start", []tick{{0, 0, false}, {0, 1 * mib, false}, {0, 2 * mib, false}}},
		{"busy then idle", []tick{{3, 50 * mib, false}, {64, 90 * mib, false}, {0, 91 * mib, true}, {0, 91 * mib, false}}},
		{"busy throughout", []tick{{1, 10 * mib, false}, {2, 90 * mib, false}}},
		{"a short session between two ticks", []tick{{0, 1 * mib, false}, {0, 30 * mib, true}, {0, 31 * mib, false}}},
		{"two bursts", []tick{{5, 20 * mib, false}, {0, 21 * mib, true}, {2, 60 * mib, false}, {0, 61 * mib, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, frees, wantFrees := 0, 0, 0
			r := &reclaimer{
				sessions:  func() int { return tc.ticks[i].sessions },
				allocated: func() uint64 { return tc.ticks[i].allocated },
				free:      func() { frees++ },
				log:       slog.New(slog.DiscardHandler),
			}
			for i = range tc.ticks {
				if got := r.tick(); got != tc.ticks[i].free {
					t.Errorf("tick %d (%+v) freed = %v", i, tc.ticks[i], got)
				}
				if tc.ticks[i].free {
					wantFrees++
				}
			}
			if frees != wantFrees {
				t.Errorf("free called %d times, want %d", frees, wantFrees)
			}
		})
	}
	if heapAllocated() == 0 {
		t.Error("runtime/metrics reports no heap allocation")
	}
}
