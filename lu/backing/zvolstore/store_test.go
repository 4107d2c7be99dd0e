package zvolstore

import (
	"context"
	"errors"
	"testing"

	"github.com/costar-project/costar/lu/zvol"
	"github.com/costar-project/costar/lu/zvol/zvoltest"
)

func TestResolve(t *testing.T) {
	ctx := context.Background()
	f := zvoltest.New(t.TempDir())
	for _, n := range []string{"tank/v", "rdsk/a/b"} {
		if err := f.CreateVolume(ctx, n, 1<<20, 8192, nil); err != nil {
			t.Fatal(err)
		}
	}
	dev := f.DevDir()
	for path, want := range map[string]string{
		dev + "/tank/v":        "tank/v",
		dev + "/rdsk/tank/v":   "tank/v",
		dev + "/dsk/tank/v":    "tank/v",
		dev + "/rdsk/rdsk/a/b": "rdsk/a/b",
		dev + "/rdsk/a/b":      "rdsk/a/b", // a/b does not exist: the Linux reading
	} {
		v, err := Resolve(ctx, f, path)
		if err != nil || v.Name != want {
			t.Errorf("ResolveZvol(%s) = %q, %v; want %q", path, v.Name, err, want)
		}
	}
	if _, err := Resolve(ctx, f, dev+"/tank/none"); !errors.Is(err, zvol.ErrNotFound) {
		t.Errorf("ResolveZvol(missing) = %v", err)
	}
	if _, err := Resolve(ctx, f, "/dev/zvol/tank/v"); !errors.Is(err, zvol.ErrNotZvolPath) {
		t.Errorf("ResolveZvol(outside the device directory) = %v", err)
	}
}
