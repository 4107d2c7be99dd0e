package daemon

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/progress"
)

// A long operation cancelled mid-way (the client went away) leaves
// nothing half made: no zvol, no file it created, no file grown, no LU
// registered or recorded. The cancel lands at a chosen phase, as a
// streaming client's would.
func TestCancelledOperationsLeaveNothing(t *testing.T) {
	alias := "src"
	for _, tc := range []struct {
		name string
		// at: the cancel comes with the first event this says yes to.
		at func(progress.Event) bool
		// setup prepares the env and returns the operation.
		setup func(e *zvolEnv, dir string) func(context.Context) error
		// check looks at what is left besides the LU list and state.
		check func(t *testing.T, e *zvolEnv, dir string)
	}{
		{
			name: "create-lu -p zvol= after zfs create",
			at:   phase("writing the LU's metadata"),
			setup: func(e *zvolEnv, _ string) func(context.Context) error {
				return func(ctx context.Context) error {
					_, err := e.m.CreateZvolLU(ctx, api.CreateZvolLURequest{Zvol: "tank/new", Size: 1 << 20, VolBlockSize: 16384})
					return err
				}
			},
			check: func(t *testing.T, e *zvolEnv, _ string) {
				if e.f.Exists("tank/new") {
					t.Error("the zvol is left")
				}
			},
		},
		{
			name: "create-lu -p zvol= at registration",
			at:   phase("registering"),
			setup: func(e *zvolEnv, _ string) func(context.Context) error {
				return func(ctx context.Context) error {
					_, err := e.m.CreateZvolLU(ctx, api.CreateZvolLURequest{Zvol: "tank/new", Size: 1 << 20, VolBlockSize: 16384})
					return err
				}
			},
			check: func(t *testing.T, e *zvolEnv, _ string) {
				if e.f.Exists("tank/new") {
					t.Error("the zvol is left")
				}
			},
		},
		{
			name: "clone-lu after zfs clone",
			at:   phase("opening the LU on zvol tank/src-s1"),
			setup: func(e *zvolEnv, _ string) func(context.Context) error {
				src := e.create("tank/src", 1<<20, api.LUProps{Alias: &alias})
				if _, err := e.m.SnapshotLU(e.ctx, api.SnapshotLURequest{GUID: src.GUID, Name: "s1"}); err != nil {
					t.Fatal(err)
				}
				return func(ctx context.Context) error {
					_, err := e.m.CloneLU(ctx, api.CloneLURequest{Source: src.GUID + "@s1"})
					return err
				}
			},
			check: func(t *testing.T, e *zvolEnv, _ string) {
				if want := []string{"tank/src", "tank/src@s1"}; !reflect.DeepEqual(e.f.Names(), want) {
					t.Errorf("datasets %v, want %v", e.f.Names(), want)
				}
			},
		},
		{
			name: "snapshot-lu before zfs snapshot",
			at:   phase("zfs snapshot"),
			setup: func(e *zvolEnv, _ string) func(context.Context) error {
				src := e.create("tank/src", 1<<20, api.LUProps{})
				return func(ctx context.Context) error {
					_, err := e.m.SnapshotLU(ctx, api.SnapshotLURequest{GUID: src.GUID, Name: "s1"})
					return err
				}
			},
			check: func(t *testing.T, e *zvolEnv, _ string) {
				if want := []string{"tank/src"}; !reflect.DeepEqual(e.f.Names(), want) {
					t.Errorf("datasets %v, want %v", e.f.Names(), want)
				}
			},
		},
		{
			name: "delete-lu --destroy-zvol before zfs destroy",
			at:   phase("zfs destroy"),
			setup: func(e *zvolEnv, _ string) func(context.Context) error {
				src := e.create("tank/src", 1<<20, api.LUProps{})
				return func(ctx context.Context) error {
					_, err := e.m.DestroyLU(ctx, api.DestroyLURequest{GUID: src.GUID})
					return err
				}
			},
			check: func(t *testing.T, e *zvolEnv, _ string) {
				lus, _ := e.m.ListLUs(e.ctx, api.Empty{})
				if len(lus) != 1 || !e.f.Exists("tank/src") {
					t.Fatalf("LUs %+v, zvol there: %v", lus, e.f.Exists("tank/src"))
				}
				if _, ok := e.fw.LU(guidOf(t, lus[0].GUID)); !ok || lus[0].Status != "Online" {
					t.Errorf("the LU is not back online and registered: %+v", lus[0])
				}
			},
		},
		{
			name: "modify-lu -s of a zvol LU before zfs set volsize",
			at:   phase("resizing"),
			setup: func(e *zvolEnv, _ string) func(context.Context) error {
				src := e.create("tank/src", 1<<20, api.LUProps{})
				return func(ctx context.Context) error {
					_, err := e.m.ModifyLU(ctx, api.ModifyLURequest{GUID: src.GUID, Size: 2 << 20})
					return err
				}
			},
			check: func(t *testing.T, e *zvolEnv, _ string) {
				if v, err := e.f.Volume(e.ctx, "tank/src"); err != nil || v.Size != 1<<20 {
					t.Errorf("volume %+v %v", v, err)
				}
			},
		},
		{
			name: "import-lu at registration",
			at:   phase("registering"),
			setup: func(e *zvolEnv, dir string) func(context.Context) error {
				path := filepath.Join(dir, "lu.img")
				lu, err := e.m.CreateLU(e.ctx, api.CreateLURequest{DataFile: path, Size: 1 << 20})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.m.DeleteLU(e.ctx, api.DeleteLURequest{GUID: lu.GUID}); err != nil {
					t.Fatal(err)
				}
				return func(ctx context.Context) error {
					_, err := e.m.ImportLU(ctx, api.ImportLURequest{File: path})
					return err
				}
			},
			check: func(t *testing.T, _ *zvolEnv, dir string) {
				if _, err := os.Stat(filepath.Join(dir, "lu.img")); err != nil {
					t.Errorf("an imported file is not ours to remove: %v", err)
				}
			},
		},
		{
			name: "create-lu -p preallocation=full while writing zeroes",
			at:   func(ev progress.Event) bool { return ev.Done > 0 && ev.Done < ev.Total },
			setup: func(e *zvolEnv, dir string) func(context.Context) error {
				return func(ctx context.Context) error {
					_, err := e.m.CreateLU(ctx, api.CreateLURequest{DataFile: filepath.Join(dir, "lu.img"), Size: 256 << 20,
						Props: api.LUProps{Preallocation: api.PreallocFull}})
					return err
				}
			},
			check: func(t *testing.T, _ *zvolEnv, dir string) {
				if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
					t.Errorf("files left: %v", left)
				}
			},
		},
		{
			name: "create-lu of a new file at registration",
			at:   phase("registering"),
			setup: func(e *zvolEnv, dir string) func(context.Context) error {
				return func(ctx context.Context) error {
					_, err := e.m.CreateLU(ctx, api.CreateLURequest{DataFile: filepath.Join(dir, "lu.img"), Size: 1 << 20})
					return err
				}
			},
			check: func(t *testing.T, _ *zvolEnv, dir string) {
				if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
					t.Errorf("files left (data file, atomic write journal): %v", left)
				}
			},
		},
		{
			name: "create-lu growing an existing file, at registration",
			at:   phase("registering"),
			setup: func(e *zvolEnv, dir string) func(context.Context) error {
				if err := os.WriteFile(filepath.Join(dir, "old.img"), make([]byte, 128<<10), 0o600); err != nil {
					t.Fatal(err)
				}
				return func(ctx context.Context) error {
					_, err := e.m.CreateLU(ctx, api.CreateLURequest{DataFile: filepath.Join(dir, "old.img"), Size: 4 << 20,
						Props: api.LUProps{Preallocation: api.PreallocFalloc}})
					return err
				}
			},
			check: func(t *testing.T, _ *zvolEnv, dir string) {
				if fi, err := os.Stat(filepath.Join(dir, "old.img")); err != nil || fi.Size() != 128<<10 {
					t.Errorf("the existing file was not cut back: %v %v", fi, err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newZvolEnv(t)
			dir := t.TempDir()
			op := tc.setup(e, dir)
			lusBefore, _ := e.m.ListLUs(e.ctx, api.Empty{})
			stateBefore, err := e.st.Load()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(e.ctx)
			defer cancel()
			var seen []string
			ctx = progress.With(ctx, func(ev progress.Event) {
				seen = append(seen, ev.Phase)
				if tc.at(ev) {
					cancel()
				}
			})
			err = op(ctx)
			if err == nil || ctx.Err() == nil {
				t.Fatalf("the operation was not cancelled (err %v; phases %q)", err, seen)
			}
			lusAfter, _ := e.m.ListLUs(e.ctx, api.Empty{})
			stateAfter, lerr := e.st.Load()
			if lerr != nil || !reflect.DeepEqual(lusAfter, lusBefore) || !reflect.DeepEqual(stateAfter, stateBefore) {
				t.Errorf("LUs or state changed:\nbefore %+v\n       %+v\nafter  %+v\n       %+v (%v)", lusBefore, stateBefore, lusAfter, stateAfter, lerr)
			}
			tc.check(t, e, dir)
		})
	}
}

func phase(prefix string) func(progress.Event) bool {
	return func(ev progress.Event) bool { return strings.HasPrefix(ev.Phase, prefix) }
}
