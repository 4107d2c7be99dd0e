package zvol_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/costar-project/costar/lu/zvol"
	"github.com/costar-project/costar/lu/zvol/zvoltest"
	"github.com/costar-project/costar/stmf"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		m    zvol.Meta
		v    zvol.Volume
		want zvol.Relation
	}{
		{"same name and guid", zvol.Meta{Zvol: "tank/a", ZvolGUID: 7}, zvol.Volume{Name: "tank/a", GUID: 7}, zvol.Same},
		{"same name, other guid (received on another host)", zvol.Meta{Zvol: "tank/a", ZvolGUID: 7}, zvol.Volume{Name: "tank/a", GUID: 8}, zvol.Same},
		{"same name, guid unknown", zvol.Meta{Zvol: "tank/a"}, zvol.Volume{Name: "tank/a", GUID: 8}, zvol.Same},
		{"renamed", zvol.Meta{Zvol: "tank/a", ZvolGUID: 7}, zvol.Volume{Name: "tank/b", GUID: 7}, zvol.Renamed},
		{"clone or copy", zvol.Meta{Zvol: "tank/a", ZvolGUID: 7}, zvol.Volume{Name: "tank/b", GUID: 9}, zvol.Copy},
		{"other name, guid unknown", zvol.Meta{Zvol: "tank/a"}, zvol.Volume{Name: "tank/b", GUID: 9}, zvol.Copy},
		{"zero guids do not match", zvol.Meta{Zvol: "tank/a"}, zvol.Volume{Name: "tank/b"}, zvol.Copy},
	}
	for _, tt := range tests {
		if got := zvol.Classify(&tt.m, tt.v); got != tt.want {
			t.Errorf("%s: Classify = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func put(t *testing.T, f *zvoltest.Fake, name string, guid stmf.GUID, zguid uint64) {
	t.Helper()
	m := zvol.Meta{GUID: guid, Zvol: name, ZvolGUID: zguid, BlockSize: 512}
	s, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.SetUserProp(context.Background(), name, zvol.PropLU, s); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	ctx := context.Background()
	f := zvoltest.New(t.TempDir())
	g := stmf.GUID{0x60, 0x01, 0x44, 0xf0, 1}
	if err := f.CreateVolume(ctx, "tank/a", 1<<20, 8192, nil); err != nil {
		t.Fatal(err)
	}
	va, _ := f.Volume(ctx, "tank/a")

	// No metadata at all.
	if _, err := zvol.Load(ctx, f, va); !errors.Is(err, zvol.ErrNoMetadata) {
		t.Fatalf("Load of a bare zvol = %v, want ErrNoMetadata", err)
	}

	put(t, f, "tank/a", g, va.GUID)
	pr, _ := zvol.EncodePR([]byte("pr-state"))
	if err := f.SetUserProp(ctx, "tank/a", zvol.PropPR, pr); err != nil {
		t.Fatal(err)
	}
	found, err := zvol.Load(ctx, f, va)
	if err != nil || found.Relation != zvol.Same || found.Meta.GUID != g || string(found.PR) != "pr-state" || found.From != "tank/a" || !found.HasPR || found.PRRaw != pr || found.Raw == "" {
		t.Fatalf("Load(tank/a) = %+v, %v", found, err)
	}

	// A plain zfs clone: no property of its own, metadata from the origin snapshot, a copy without PR state.
	if err := f.Snapshot(ctx, "tank/a", "s1", nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Clone(ctx, "tank/a@s1", "tank/c", nil); err != nil {
		t.Fatal(err)
	}
	vc, _ := f.Volume(ctx, "tank/c")
	found, err = zvol.Load(ctx, f, vc)
	if err != nil || found.Relation != zvol.Copy || found.From != "tank/a@s1" || found.PR != nil || found.Meta.GUID != g {
		t.Fatalf("Load(clone) = %+v, %v", found, err)
	}

	// zfs send -p | zfs recv under another name: a copy; without -p: nothing.
	if err := f.Receive("tank/a@s1", "tank/r", true); err != nil {
		t.Fatal(err)
	}
	vr, _ := f.Volume(ctx, "tank/r")
	if found, err = zvol.Load(ctx, f, vr); err != nil || found.Relation != zvol.Copy || found.PR != nil || !found.HasPR {
		t.Fatalf("Load(received copy) = %+v, %v", found, err)
	}
	if err := f.Receive("tank/a@s1", "tank/r2", false); err != nil {
		t.Fatal(err)
	}
	vr2, _ := f.Volume(ctx, "tank/r2")
	if _, err := zvol.Load(ctx, f, vr2); !errors.Is(err, zvol.ErrNoMetadata) {
		t.Fatalf("Load(received without -p) = %v, want ErrNoMetadata", err)
	}

	// zfs rename: same dataset guid, so the same LU.
	if err := f.Rename("tank/a", "tank/a2"); err != nil {
		t.Fatal(err)
	}
	va2, _ := f.Volume(ctx, "tank/a2")
	if found, err = zvol.Load(ctx, f, va2); err != nil || found.Relation != zvol.Renamed || string(found.PR) != "pr-state" {
		t.Fatalf("Load(renamed) = %+v, %v", found, err)
	}

	// Garbage in the property: a clear error, not ErrNoMetadata.
	if err := f.SetUserProp(ctx, "tank/c", zvol.PropLU, "garbage"); err != nil {
		t.Fatal(err)
	}
	if _, err := zvol.Load(ctx, f, vc); err == nil || errors.Is(err, zvol.ErrNoMetadata) {
		t.Fatalf("Load(garbage) = %v, want a decode error", err)
	}
	// ZFS failing: its error comes through.
	f.FailOn = func(op, name string) error {
		if op == "userprop" {
			return errors.New("cannot open 'tank/a2': I/O error")
		}
		return nil
	}
	var ce *zvol.CmdError
	if _, err := zvol.Load(ctx, f, va2); !errors.As(err, &ce) {
		t.Fatalf("Load with zfs failing = %v, want a CmdError", err)
	}
}

func TestDestroyRetry(t *testing.T) {
	ctx := context.Background()
	f := zvoltest.New(t.TempDir())
	if err := f.CreateVolume(ctx, "tank/v", 1<<20, 8192, nil); err != nil {
		t.Fatal(err)
	}
	busy := 3
	f.FailOn = func(op, name string) error {
		if op == "destroy" && busy > 0 {
			busy--
			return errors.New("cannot destroy 'tank/v': dataset is busy")
		}
		return nil
	}
	if err := zvol.DestroyRetry(ctx, f, "tank/v", 10*time.Second); err != nil || f.Exists("tank/v") {
		t.Fatalf("DestroyRetry = %v (exists %v)", err, f.Exists("tank/v"))
	}
	// Other failures are not retried; a busy dataset is given up on after wait.
	if err := f.CreateVolume(ctx, "tank/v", 1<<20, 8192, nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	f.FailOn = func(op, name string) error {
		if op == "destroy" {
			n++
			return errors.New("cannot destroy 'tank/v': volume has children")
		}
		return nil
	}
	if err := zvol.DestroyRetry(ctx, f, "tank/v", 10*time.Second); err == nil || zvol.IsBusy(err) || n != 1 {
		t.Fatalf("DestroyRetry(children) = %v after %d tries", err, n)
	}
	f.FailOn = func(op, name string) error {
		if op == "destroy" {
			return errors.New("cannot destroy 'tank/v': dataset is busy")
		}
		return nil
	}
	start := time.Now()
	if err := zvol.DestroyRetry(ctx, f, "tank/v", 200*time.Millisecond); !zvol.IsBusy(err) || time.Since(start) > 2*time.Second {
		t.Fatalf("DestroyRetry(always busy) = %v after %v", err, time.Since(start))
	}
}
