package iscsi

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/costar-project/costar/stmf"
)

// keeperLU is a fakeLU that keeps every task it ran, as an LU's own
// bookkeeping might for a while, and a weak pointer to each write buffer
// the port provider handed it.
type keeperLU struct {
	*fakeLU
	mu    sync.Mutex
	tasks []*stmf.Task
	bufs  []weak.Pointer[byte]
}

func (k *keeperLU) Execute(t *stmf.Task) {
	if t.CDB[0] == 0x2a || t.CDB[0] == 0x8a {
		if b, err := t.Data(); err == nil && len(b) > 0 {
			k.mu.Lock()
			k.bufs = append(k.bufs, weak.Make(&b[0]))
			k.mu.Unlock()
		}
	}
	k.mu.Lock()
	k.tasks = append(k.tasks, t)
	k.mu.Unlock()
	k.fakeLU.Execute(t)
}

// TestFinishedCommandDropsBuffers: a finished command that something
// still reaches (here the LU keeps its tasks) must not keep its Data-Out
// buffer: once the session is gone and the buffer pools emptied, every
// write buffer is collected.
func TestFinishedCommandDropsBuffers(t *testing.T) {
	log := testLogger(t)
	fw := stmf.New(log)
	k := &keeperLU{fakeLU: newFakeLU(4 << 20)}
	close(k.release)
	if err := fw.RegisterLU(k); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(k.GUID(), stmf.ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(fw, Config{Portals: []string{"127.0.0.1:0"}, Targets: []TargetConfig{{Name: testTarget}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	in := dial(t, srv.Addrs()[0].String())
	in.login(testTarget, kv("ImmediateData", "No"), kv("InitialR2T", "Yes"))
	for i := range 8 {
		writeThenRead(t, in, uint32(i*128), 64<<10, byte(i))
	}
	in.logout()
	for deadline := time.Now().Add(5 * time.Second); len(srv.Sessions()) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("session still open")
		}
	}
	k.mu.Lock()
	bufs := k.bufs
	k.mu.Unlock()
	if len(bufs) != 8 {
		t.Fatalf("%d write buffers seen, want 8", len(bufs))
	}
	var live int
	for range 20 { // two collections empty a sync.Pool; a few more for stragglers
		runtime.GC()
		live = 0
		for _, p := range bufs {
			if p.Value() != nil {
				live++
			}
		}
		if live == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if live != 0 {
		t.Errorf("%d of %d write buffers still reachable through finished commands", live, len(bufs))
	}
	runtime.KeepAlive(k)
}
