package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The configuration document: writes conditioned on the revision read,
// watched by the other nodes.
func TestConfigDocument(t *testing.T) {
	e := startEtcd(t, 1)
	ca, cb := client(t, e, "a"), client(t, e, "b")
	ctx := t.Context()
	if doc, rev, err := ca.GetConfig(ctx); err != nil || rev != 0 || doc != nil {
		t.Fatalf("empty cluster: %q %d %v", doc, rev, err)
	}
	seen := make(chan string, 4)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go cb.WatchConfig(wctx, 0, func(doc []byte, _ int64) { seen <- string(doc) })

	r1, err := ca.PutConfig(ctx, []byte("one"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.PutConfig(ctx, []byte("two"), 0); !errors.Is(err, ErrConfigChanged) {
		t.Fatalf("second create: %v, want ErrConfigChanged", err)
	}
	r2, err := cb.PutConfig(ctx, []byte("two"), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("write at the revision read: %d %v", r2, err)
	}
	// a still holds r1: its write is refused and changes nothing.
	if _, err := ca.PutConfig(ctx, []byte("stale"), r1); !errors.Is(err, ErrConfigChanged) {
		t.Fatalf("stale write: %v, want ErrConfigChanged", err)
	}
	if doc, rev, _ := ca.GetConfig(ctx); string(doc) != "two" || rev != r2 {
		t.Fatalf("after the refused write: %q at %d", doc, rev)
	}
	for _, want := range []string{"one", "two"} {
		select {
		case got := <-seen:
			if got != want {
				t.Fatalf("watch saw %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch did not deliver %q within 10s", want)
		}
	}
}
