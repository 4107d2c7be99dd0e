package integration

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// TestListStatsMatchesClient runs a paced read workload from an iSCSI
// initiator that timestamps every completed read, and checks that each
// report of "stmfadm list-stats -i 1 -c 3 -o json" shows the rate the
// client saw over the same interval, within 10 %. Pacing (well below what
// the target does) keeps the load gentle on a shared CI machine; the
// comparison is over identical windows, so CPU noise does not matter.
func TestListStatsMatchesClient(t *testing.T) {
	ctx := harness.Context(t, testTimeout)
	d := startDaemon(ctx, t, harness.TempDir(t, "stmfd-stats"), "--demo-size", "64M")
	s := harness.Login(ctx, t, d.Portal, demoIQN, testInitiator, 7)
	harness.Ready(ctx, t, s, 0)

	const rate, runFor = 400, 6 * time.Second // reads per second, workload length
	var mu sync.Mutex
	var done []time.Time
	var werr error
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		read10 := []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0} // 8 x 512-byte blocks at LBA 0
		start := time.Now()
		for i := 0; time.Since(start) < runFor; i++ {
			if wait := time.Until(start.Add(time.Duration(i) * time.Second / rate)); wait > 0 {
				select {
				case <-wctx.Done():
					return
				case <-time.After(wait):
				}
			}
			r, err := s.Do(wctx, 0, read10, nil, 4096)
			if wctx.Err() != nil {
				return // stopped: the reports are taken
			}
			if err == nil && r.Status != initiator.StatusGood {
				err = errors.New(r.String())
			}
			now := time.Now()
			mu.Lock()
			if err != nil {
				werr = err
				mu.Unlock()
				return
			}
			done = append(done, now)
			mu.Unlock()
		}
	}()
	time.Sleep(time.Second) // let the workload settle into its pace
	out := d.OK("stmfadm", "list-stats", "-i", "1", "-c", "3", "-o", "json", "demo")
	stop()
	<-finished
	mu.Lock()
	defer mu.Unlock()
	if werr != nil {
		t.Fatalf("workload: %v", werr)
	}

	dec := json.NewDecoder(strings.NewReader(out))
	n := 0
	for {
		var r struct {
			Time     time.Time `json:"time"`
			Interval float64   `json:"interval_s"`
			LUs      []struct {
				Alias   string  `json:"alias"`
				Reads   float64 `json:"reads"`
				Writes  float64 `json:"writes"`
				KiBRead float64 `json:"kib_read"`
			} `json:"lus"`
		}
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("list-stats -o json: %v", err)
		}
		n++
		if len(r.LUs) != 1 || r.LUs[0].Alias != "demo" || r.Interval < 0.5 || r.Interval > 2 {
			t.Fatalf("report %d: %+v", n, r)
		}
		from := r.Time.Add(-time.Duration(r.Interval * float64(time.Second)))
		var seen int
		for _, at := range done {
			if at.After(from) && !at.After(r.Time) {
				seen++
			}
		}
		client := float64(seen) / r.Interval
		got := r.LUs[0]
		t.Logf("report %d: list-stats %.1f r/s, %.1f kr/s; client %.1f reads/s over the same %.3f s", n, got.Reads, got.KiBRead, client, r.Interval)
		if client < rate/2 {
			t.Fatalf("report %d: the client managed only %.1f reads/s (want about %d): the window missed the workload", n, client, rate)
		}
		if math.Abs(got.Reads-client) > 0.1*client || got.Writes != 0 {
			t.Errorf("report %d: list-stats %.1f r/s %.1f w/s, client %.1f reads/s: more than 10 %% apart", n, got.Reads, got.Writes, client)
		}
		// Each read is 4 KiB; INQUIRY and the like add a little Data-In.
		if math.Abs(got.KiBRead-4*got.Reads) > 0.1*4*got.Reads {
			t.Errorf("report %d: %.1f kr/s for %.1f reads/s of 4 KiB", n, got.KiBRead, got.Reads)
		}
	}
	if n != 3 {
		t.Errorf("%d reports, want 3", n)
	}
}
