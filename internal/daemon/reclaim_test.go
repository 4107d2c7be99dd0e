package daemon

import (
	"log/slog"
	"testing"
)

func TestReclaimerFreesOnlyWhenTheLastSessionEnds(t *testing.T) {
	// sessions at each tick -> whether that tick frees memory
	for _, tc := range []struct {
		name     string
		sessions []int
		want     []bool
	}{
		{"idle from the start", []int{0, 0, 0}, []bool{false, false, false}},
		{"busy then idle", []int{3, 64, 0, 0}, []bool{false, false, true, false}},
		{"busy throughout", []int{1, 2, 1}, []bool{false, false, false}},
		{"two bursts", []int{5, 0, 2, 0}, []bool{false, true, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, frees := 0, 0
			r := &reclaimer{sessions: func() int { return tc.sessions[i] }, free: func() { frees++ }, log: slog.New(slog.DiscardHandler)}
			want := 0
			for i = range tc.sessions {
				if got := r.tick(); got != tc.want[i] {
					t.Errorf("tick %d (%d sessions) freed = %v, want %v", i, tc.sessions[i], got, tc.want[i])
				}
				if tc.want[i] {
					want++
				}
			}
			if frees != want {
				t.Errorf("free called %d times, want %d", frees, want)
			}
		})
	}
}
