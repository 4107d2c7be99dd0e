package mgmt

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
)

// A change whose save is slow (an etcd Txn in cluster mode) does not hold
// up reads, which see the state before it, and still keeps the next
// change out until it is done.
func TestReadsDoNotWaitForASlowSave(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	hg := func(name string) api.GroupRequest { return api.GroupRequest{Kind: api.HostGroup, Name: name} }
	must[api.Empty](t)(r.m.CreateGroup(ctx, hg("before")))
	hold, entered := make(chan struct{}), make(chan struct{}, 2)
	r.st.holdSaves(hold, entered)
	released := false
	release := func() {
		if !released {
			released = true
			close(hold)
		}
	}
	t.Cleanup(release)
	done := make(chan error, 2)
	go func() { _, err := r.m.CreateGroup(ctx, hg("slow")); done <- err }()
	const bound = 10 * time.Second // a hang, not a timing
	select {
	case <-entered:
	case <-time.After(bound):
		t.Fatal("the change never saved")
	}

	names := func() []string {
		var out []string
		for _, g := range must[[]api.Group](t)(r.m.ListGroups(ctx, api.GroupRequest{Kind: api.HostGroup})) {
			out = append(out, g.Name)
		}
		return out
	}
	for _, read := range []struct {
		name string
		call func() any
		want any
	}{
		{"list-hg", func() any { return names() }, []string{"before"}},
		{"list-lu", func() any { return len(must[[]api.LU](t)(r.m.ListLUs(ctx, api.Empty{}))) }, 0},
		{"list-target", func() any { return len(must[[]api.Target](t)(r.m.ListTargets(ctx, api.Empty{}))) }, 0},
		{"export", func() any {
			return len(must[api.ExportResult](t)(r.m.ExportConfig(ctx, api.Empty{})).Config.HostGroups)
		}, 1},
	} {
		got := make(chan any, 1)
		go func() { got <- read.call() }()
		select {
		case g := <-got:
			if !equalAny(g, read.want) {
				t.Errorf("%s during the save: %v, want %v (the state before the change)", read.name, g, read.want)
			}
		case <-time.After(bound):
			t.Fatalf("%s waited for the save", read.name)
		}
	}

	// The next change waits until the first is saved and adopted.
	go func() { _, err := r.m.CreateGroup(ctx, hg("next")); done <- err }()
	select {
	case <-entered:
		t.Fatal("a second change saved while the first was saving")
	case <-time.After(200 * time.Millisecond):
	}
	release()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(bound):
			t.Fatal("the changes did not finish after the save was released")
		}
	}
	if got := names(); !slices.Equal(got, []string{"before", "slow", "next"}) {
		t.Fatalf("host groups %v", got)
	}
}

func equalAny(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, ok := b.([]string)
		return ok && slices.Equal(as, bs)
	}
	return a == b
}

// Reads cannot starve changes: once a change waits, a new read waits for
// it (outside a save).
func TestChangeLockWaitingChangeGoesFirst(t *testing.T) {
	var l changeLock
	l.RLock()
	order := make(chan string, 2)
	go func() { l.Lock(); order <- "change"; l.Unlock() }()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		w := l.waiting
		l.mu.Unlock()
		if w == 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the change never waited")
		}
	}
	go func() { l.RLock(); order <- "read"; l.RUnlock() }()
	time.Sleep(100 * time.Millisecond) // a read let in would have answered by now
	l.RUnlock()
	if first, second := <-order, <-order; first != "change" || second != "read" {
		t.Fatalf("order %s, %s; want the waiting change before the new read", first, second)
	}
}
