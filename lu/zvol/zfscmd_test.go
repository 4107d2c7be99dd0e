package zvol

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeZFSCommand puts a shell script called zfs first in PATH. It logs its
// arguments to <dir>/log and runs body.
func fakeZFSCommand(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\necho \"$*\" >>" + filepath.Join(dir, "log") + "\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(dir, "zfs"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":/usr/bin:/bin")
	return dir
}

func TestGoZFSMissingCommand(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := (&GoZFS{}).Volume(context.Background(), "tank/v")
	if !errors.Is(err, ErrNoZFS) {
		t.Fatalf("Volume without a zfs command = %v, want ErrNoZFS", err)
	}
	if !strings.Contains(err.Error(), "zfs list -Hp") {
		t.Errorf("error does not name the command: %v", err)
	}
}

func TestGoZFSCommandFails(t *testing.T) {
	fakeZFSCommand(t, `case "$1" in
list) echo "cannot open 'tank/v': dataset does not exist" >&2; exit 1 ;;
*) echo "cannot create 'tank/v': out of space" >&2; exit 1 ;;
esac`)
	err := (&GoZFS{}).CreateVolume(context.Background(), "tank/v", 1<<30, 16384, map[string]string{PropLU: "x"})
	var ce *CmdError
	if !errors.As(err, &ce) {
		t.Fatalf("CreateVolume = %v, want a CmdError", err)
	}
	for _, want := range []string{"zfs create -p -V 1073741824", "refreservation=none", "volblocksize=16384", "org.costar:lu=x", "tank/v"} {
		if !strings.Contains(ce.Cmd, want) {
			t.Errorf("command %q lacks %q", ce.Cmd, want)
		}
	}
	if ce.Stderr != "cannot create 'tank/v': out of space" {
		t.Errorf("stderr = %q", ce.Stderr)
	}
	if !strings.Contains(err.Error(), "out of space") || !strings.Contains(err.Error(), "zfs create") {
		t.Errorf("message lacks the command or its stderr: %v", err)
	}
}

func TestGoZFSNotFound(t *testing.T) {
	fakeZFSCommand(t, `echo "cannot open 'tank/nope': dataset does not exist" >&2; exit 1`)
	_, err := (&GoZFS{}).Volume(context.Background(), "tank/nope")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Volume(missing) = %v, want ErrNotFound", err)
	}
}

func TestGoZFSVolume(t *testing.T) {
	fakeZFSCommand(t, `
case "$1 $4" in
"list name,origin,used,available,mountpoint,compression,type,volsize,quota,referenced,written,logicalused,usedbydataset")
  printf 'tank/c\ttank/a@s1\t100\t200\t-\toff\tvolume\t1073741824\t0\t100\t0\t100\t100\n' ;;
esac
case "$*" in
"get -Hp volblocksize tank/c") printf 'tank/c\tvolblocksize\t16384\tdefault\n' ;;
"get -Hp guid tank/c") printf 'tank/c\tguid\t18400000000000000001\t-\n' ;;
"get -Hp org.costar:lu tank/c") printf 'tank/c\torg.costar:lu\t-\t-\n' ;;
"get -Hp org.costar:pr tank/c") printf 'tank/c\torg.costar:pr\t1:\tlocal\n' ;;
"get -Hp weird tank/c") ;;
esac`)
	ctx := context.Background()
	z := &GoZFS{}
	v, err := z.Volume(ctx, "tank/c")
	if err != nil {
		t.Fatal(err)
	}
	want := Volume{Name: "tank/c", GUID: 18400000000000000001, Size: 1 << 30, BlockSize: 16384, Origin: "tank/a@s1"}
	if v != want {
		t.Errorf("Volume = %+v, want %+v", v, want)
	}
	if s, ok, err := z.UserProp(ctx, "tank/c", PropLU); err != nil || ok || s != "" {
		t.Errorf("UserProp(unset) = %q, %v, %v", s, ok, err)
	}
	if s, ok, err := z.UserProp(ctx, "tank/c", PropPR); err != nil || !ok || s != "1:" {
		t.Errorf("UserProp(set) = %q, %v, %v", s, ok, err)
	}
	// go-zfs indexes the output without checking: no output must be an error, not a panic.
	if _, _, err := z.UserProp(ctx, "tank/c", "weird"); err == nil {
		t.Error("UserProp with no output succeeded")
	}
}

func TestGoZFSNotAVolume(t *testing.T) {
	fakeZFSCommand(t, `printf 'tank/fs\t-\t100\t200\t/tank/fs\toff\tfilesystem\t-\t0\t100\t0\t100\t100\n'`)
	if _, err := (&GoZFS{}).Volume(context.Background(), "tank/fs"); err == nil || !strings.Contains(err.Error(), "not a volume") {
		t.Fatalf("Volume(filesystem) = %v", err)
	}
}

func TestGoZFSCommands(t *testing.T) {
	dir := fakeZFSCommand(t, `
case "$1 $5" in
"list tank/c") grep -q '^clone' "$(dirname "$0")/log" || { echo "cannot open 'tank/c': dataset does not exist" >&2; exit 1; }
  printf 'tank/c\ttank/v@s1\t1\t1\t-\toff\tvolume\t1048576\t0\t1\t0\t1\t1\n' ;;
"list "*) printf '%s\t-\t1\t1\t-\toff\tsnapshot\t-\t0\t1\t0\t1\t1\n' "$(eval echo \${$#})" ;;
esac`)
	ctx := context.Background()
	z := &GoZFS{}
	steps := []struct {
		do   func() error
		want string
	}{
		{func() error { return z.SetVolsize(ctx, "tank/v", 2<<30) }, "set volsize=2147483648 tank/v"},
		{func() error { return z.SetUserProp(ctx, "tank/v", PropLU, `{"v":1}`) }, `set org.costar:lu={"v":1} tank/v`},
		{func() error { return z.Snapshot(ctx, "tank/v", "s1", map[string]string{PropLU: "m"}) }, "snapshot tank/v@s1"},
		{func() error { return z.Clone(ctx, "tank/v@s1", "tank/c", map[string]string{PropLU: "n"}) }, "clone -p -o org.costar:lu=n tank/v@s1 tank/c"},
		{func() error { return z.Destroy(ctx, "tank/c") }, "destroy tank/c"},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.want, err)
		}
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		if !strings.Contains(string(log), s.want+"\n") {
			t.Errorf("zfs was not called with %q; log:\n%s", s.want, log)
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	if !strings.Contains(string(log), "set org.costar:lu=m tank/v@s1\n") {
		t.Errorf("snapshot property not set; log:\n%s", log)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := z.Destroy(cctx, "tank/c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Destroy with a cancelled context = %v", err)
	}
}

// zfs create -p and zfs clone -p succeed on an existing dataset: an
// existing one is refused before they run.
func TestGoZFSRefusesExisting(t *testing.T) {
	dir := fakeZFSCommand(t, `printf 'tank/v\t-\t1\t1\t-\toff\tvolume\t1048576\t0\t1\t0\t1\t1\n'`)
	ctx := context.Background()
	z := &GoZFS{}
	for _, err := range []error{z.CreateVolume(ctx, "tank/v", 1<<20, 0, nil), z.Clone(ctx, "tank/a@s", "tank/v", nil)} {
		var ce *CmdError
		if !errors.As(err, &ce) || !strings.Contains(ce.Stderr, "already exists") {
			t.Errorf("creating an existing dataset = %v", err)
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	if strings.Contains(string(log), "create") || strings.Contains(string(log), "clone") {
		t.Errorf("zfs create/clone ran for an existing dataset:\n%s", log)
	}
}

func TestWaitPath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dev")
	go func() {
		time.Sleep(30 * time.Millisecond)
		os.WriteFile(p, nil, 0o600)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := WaitPath(ctx, p, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := WaitPath(ctx2, filepath.Join(dir, "never"), 5*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitPath(never) = %v", err)
	}
}
