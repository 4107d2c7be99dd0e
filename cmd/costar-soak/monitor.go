package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/costar-project/costar/api/client"
)

// monitor samples the target's resident memory (/proc/PID/status) and
// goroutine count (list-state's goroutines) while the soak runs.
type monitor struct {
	pid int
	api *client.Client

	mu       sync.Mutex
	maxRSS   uint64 // bytes
	maxGor   int
	samples  int
	failures int
}

// procStatus reads VmRSS and VmHWM (bytes) of pid.
func procStatus(pid int) (rss, hwm uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the target's memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parsing %s %q: %w", k, v, err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm, sc.Err()
}

// goroutines asks the daemon for its goroutine count and live heap.
func (m *monitor) goroutines(ctx context.Context) (int, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := m.api.GetState(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("list-state: %w", err)
	}
	if st.Goroutines <= 0 {
		return 0, 0, fmt.Errorf("list-state reports no goroutine count (daemon too old?)")
	}
	return st.Goroutines, st.HeapLiveBytes, nil
}

// sample takes one reading; what cannot be read is counted.
func (m *monitor) sample(ctx context.Context) (rss uint64, gor int, heap uint64) {
	var err error
	if m.pid > 0 {
		if rss, _, err = procStatus(m.pid); err != nil {
			rss = 0
		}
	}
	if m.api != nil {
		if gor, heap, err = m.goroutines(ctx); err != nil {
			gor = 0
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples++
	if (m.pid > 0 && rss == 0) || (m.api != nil && gor == 0) {
		m.failures++
	}
	m.maxRSS = max(m.maxRSS, rss)
	m.maxGor = max(m.maxGor, gor)
	return rss, gor, heap
}

// run samples every interval until ctx ends.
func (m *monitor) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.sample(ctx)
		}
	}
}
