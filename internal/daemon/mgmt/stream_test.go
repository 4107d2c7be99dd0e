package mgmt

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/client"
	"github.com/costar-project/costar/internal/progress"
)

type testReq struct {
	N int `json:"n"`
}

type testResp struct {
	Twice int `json:"twice"`
}

// serveOp serves op as the long call "Op" on a unix socket.
func serveOp(t *testing.T, op func(context.Context, testReq) (testResp, error)) *client.Client {
	t.Helper()
	mux := http.NewServeMux()
	routeLong(mux, quietLog(), "Op", op)
	sock := filepath.Join(t.TempDir(), "run", "stmfd.sock")
	srv, err := Listen(sock, mux, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return client.New(sock)
}

func TestStreamEventsInOrder(t *testing.T) {
	c := serveOp(t, func(ctx context.Context, r testReq) (testResp, error) {
		progress.Phase(ctx, "first")
		for i := uint64(1); i <= 4; i++ {
			progress.Bytes(ctx, "second", i, 4)
			time.Sleep(5 * time.Millisecond)
		}
		progress.Phase(ctx, "third")
		return testResp{Twice: 2 * r.N}, nil
	})
	var got []api.Progress
	var resp testResp
	if err := c.Stream(bg, "Op", testReq{N: 21}, &resp, func(p api.Progress) { got = append(got, p) }); err != nil {
		t.Fatal(err)
	}
	if resp.Twice != 42 {
		t.Fatalf("result %+v", resp)
	}
	// Every phase shows up, in order; bytes only grow and end at the
	// total; the clock only moves forward. (Byte counts of a phase may
	// coalesce, so not every one is seen.)
	var phases []string
	for i, p := range got {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
		if i > 0 && (p.ElapsedMS < got[i-1].ElapsedMS || (p.Phase == got[i-1].Phase && p.Done < got[i-1].Done)) {
			t.Fatalf("events out of order: %+v", got)
		}
		if p.Phase == "second" && (p.Total != 4 || p.Done == 0) {
			t.Fatalf("bad byte count: %+v", p)
		}
	}
	if len(phases) != 3 || phases[0] != "first" || phases[1] != "second" || phases[2] != "third" {
		t.Fatalf("phases %v (events %+v)", phases, got)
	}
	for i := len(got) - 1; i >= 0; i-- {
		if got[i].Phase == "second" {
			if got[i].Done != 4 {
				t.Fatalf("last byte count of the phase %+v", got[i])
			}
			break
		}
	}

	// The same call without asking for a stream: one answer, as before.
	if err := c.Call(bg, "Op", testReq{N: 2}, &resp); err != nil || resp.Twice != 4 {
		t.Fatalf("plain call: %+v %v", resp, err)
	}
}

func TestStreamError(t *testing.T) {
	c := serveOp(t, func(ctx context.Context, r testReq) (testResp, error) {
		progress.Phase(ctx, "trying")
		return testResp{}, api.Errorf(api.CodeDataFile, "/x", "data file error: no")
	})
	n := 0
	err := c.Stream(bg, "Op", testReq{}, nil, func(api.Progress) { n++ })
	if !api.IsCode(err, api.CodeDataFile) || n != 1 {
		t.Fatalf("err %v after %d events", err, n)
	}
	// A bad request is answered before any stream, as an API error.
	if err := c.Stream(bg, "Op", map[string]int{"bogus": 1}, nil, nil); !api.IsCode(err, api.CodeInvalidArgument) {
		t.Fatalf("bad body: %v", err)
	}
}

// A cancel (the client closes its half of the connection) reaches the
// operation's context; the client hears CANCELLED only once the
// operation has undone its work.
func TestStreamCancel(t *testing.T) {
	var undone atomic.Bool
	c := serveOp(t, func(ctx context.Context, r testReq) (testResp, error) {
		progress.Phase(ctx, "working")
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			return testResp{}, errors.New("never cancelled")
		}
		time.Sleep(50 * time.Millisecond) // undoing takes a while
		undone.Store(true)
		return testResp{}, ctx.Err()
	})
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	start := time.Now()
	err := c.Stream(ctx, "Op", testReq{}, nil, func(p api.Progress) {
		if p.Phase == "working" {
			cancel()
		}
	})
	if !api.IsCode(err, api.CodeCancelled) || !undone.Load() {
		t.Fatalf("err %v, undone %v", err, undone.Load())
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("the cancel took %v", time.Since(start))
	}
}

// A plain call runs to completion even when its client goes away.
func TestPlainCallNotCancelled(t *testing.T) {
	release := make(chan struct{})
	finished := make(chan error, 1)
	c := serveOp(t, func(ctx context.Context, r testReq) (testResp, error) {
		<-release
		finished <- ctx.Err()
		return testResp{}, nil
	})
	ctx, cancel := context.WithCancel(bg)
	errc := make(chan error, 1)
	go func() { errc <- c.Call(ctx, "Op", testReq{}, nil) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the client was not interrupted")
	}
	close(release)
	if err := <-finished; err != nil {
		t.Fatalf("the operation saw %v", err)
	}
}

// A phase that reports nothing for a while (a zfs command) is repeated
// every second with its elapsed time.
func TestStreamHeartbeat(t *testing.T) {
	c := serveOp(t, func(ctx context.Context, r testReq) (testResp, error) {
		progress.Phase(ctx, "zfs create")
		time.Sleep(streamHeartbeat + 300*time.Millisecond)
		return testResp{}, nil
	})
	var got []api.Progress
	if err := c.Stream(bg, "Op", testReq{}, nil, func(p api.Progress) { got = append(got, p) }); err != nil {
		t.Fatal(err)
	}
	if len(got) < 2 || got[0].Phase != "zfs create" || got[1].Phase != "zfs create" || got[1].PhaseMS < streamHeartbeat.Milliseconds() {
		t.Fatalf("events %+v", got)
	}
}
