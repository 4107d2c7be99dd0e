package iscsi

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestPollersBound(t *testing.T) {
	for _, tc := range []struct {
		max  int32
		want []bool // successive acquires
	}{
		{0, []bool{false, false}},
		{1, []bool{true, false}},
		{3, []bool{true, true, true, false}},
	} {
		p := &pollers{max: tc.max}
		for i, w := range tc.want {
			if got := p.acquire(); got != w {
				t.Errorf("max %d: acquire %d = %v, want %v", tc.max, i, got, w)
			}
		}
		if n := p.n.Load(); n != tc.max {
			t.Errorf("max %d: %d holders after the acquires, want %d", tc.max, n, tc.max)
		}
		if tc.max > 0 {
			p.release()
			if !p.acquire() {
				t.Errorf("max %d: acquire after a release failed", tc.max)
			}
		}
	}
}

// pollPair is a pollReader on the server end of a loopback TCP
// connection, polling for window, with maxPollers pollers allowed.
func pollPair(t *testing.T, window time.Duration, maxPollers int32) (*pollReader, *conn, net.Conn) {
	t.Helper()
	server, client := loopbackPair(t)
	srv := &Server{log: testLogger(t), pollers: &pollers{max: maxPollers}}
	c := newConn(srv, server)
	t.Cleanup(c.abort)
	c.ffp.Store(true)
	return newPollReader(c, window), c, client
}

// readAfter writes msg to w after delay (0: before the read starts) and
// reads it back through r.
func readAfter(t *testing.T, r *pollReader, w net.Conn, delay time.Duration, msg string) {
	t.Helper()
	done := make(chan error, 1)
	if delay == 0 {
		if _, err := w.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // loopback delivery
		done <- nil
	} else {
		go func() {
			time.Sleep(delay)
			_, err := w.Write([]byte(msg))
			done <- err
		}()
	}
	b := make([]byte, 64)
	n, err := r.Read(b)
	if err != nil || string(b[:n]) != msg {
		t.Fatalf("Read = %q, %v; want %q", b[:n], err, msg)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPollReaderBacksOffAfterEmptyPolls(t *testing.T) {
	r, _, client := pollPair(t, 50*time.Microsecond, 1)
	// Each read's data comes long after the window: every poll finds
	// nothing. The first pollMisses-1 misses change nothing, then the
	// reads skipped in between grow 1, 2, 4 ... 64.
	for i := 1; i < pollMisses; i++ {
		readAfter(t, r, client, 20*time.Millisecond, "late")
		if r.misses != i || r.backoff != 0 || r.skip != 0 {
			t.Fatalf("empty poll %d: misses %d backoff %d skip %d, want %d 0 0", i, r.misses, r.backoff, r.skip, i)
		}
	}
	wantSkip := []int{1, 2, 4, 8, 16, 32, 64, 64}
	for i, want := range wantSkip {
		readAfter(t, r, client, 20*time.Millisecond, "late")
		if r.backoff != want || r.skip != want {
			t.Fatalf("empty poll %d: backoff %d skip %d, want %d", i, r.backoff, r.skip, want)
		}
		for k := 0; k < want; k++ { // skipped: no poll, the backoff stays
			readAfter(t, r, client, 0, "skip")
		}
		if r.skip != 0 || r.backoff != want {
			t.Fatalf("after %d skipped reads: skip %d backoff %d", want, r.skip, r.backoff)
		}
	}
	// A poll that finds data resets the backoff.
	readAfter(t, r, client, 0, "ready")
	if r.misses != 0 || r.backoff != 0 || r.skip != 0 {
		t.Fatalf("after a poll that found data: misses %d backoff %d skip %d, want 0 0 0", r.misses, r.backoff, r.skip)
	}
}

func TestPollReaderDoesNotPoll(t *testing.T) {
	for _, tc := range []struct {
		name       string
		window     time.Duration
		maxPollers int32
		inFlight   bool
		loggingIn  bool
	}{
		{"window 0", 0, 1, false, false},
		{"no poller slot (GOMAXPROCS 1)", 50 * time.Microsecond, 0, false, false},
		{"a command in flight", 50 * time.Microsecond, 1, true, false},
		{"still logging in", 50 * time.Microsecond, 1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c, client := pollPair(t, tc.window, tc.maxPollers)
			if tc.inFlight {
				c.tasks[1] = &cmd{}
			}
			if tc.loggingIn {
				c.ffp.Store(false)
			}
			// A poll would find nothing and count a miss; no poll leaves 0.
			readAfter(t, r, client, 20*time.Millisecond, "late")
			if r.misses != 0 || r.backoff != 0 || r.skip != 0 {
				t.Errorf("misses %d backoff %d skip %d: the reader polled", r.misses, r.backoff, r.skip)
			}
		})
	}
}

func TestPollReaderEOF(t *testing.T) {
	r, _, client := pollPair(t, 50*time.Microsecond, 1)
	client.Close()
	time.Sleep(5 * time.Millisecond)
	b := make([]byte, 8)
	if n, err := r.Read(b); !errors.Is(err, io.EOF) {
		t.Fatalf("Read after the peer closed = %d, %v; want EOF", n, err)
	}
}
