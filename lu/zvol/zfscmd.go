package zvol

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	gozfs "github.com/mistifyio/go-zfs/v4"
)

// Volume is what the LU provider needs to know about a zvol.
type Volume struct {
	Name      string // dataset name
	GUID      uint64 // the dataset's ZFS guid: new for a clone or a received copy, kept by rename and export/import
	Size      uint64 // volsize in bytes
	BlockSize uint64 // volblocksize in bytes
	Origin    string // the snapshot a clone was made from; "" otherwise
}

// ZFS is the part of ZFS the LU provider uses. GoZFS implements it with
// the zfs command; tests use a fake. Errors wrap ErrNotFound for a dataset
// that does not exist and ErrNoZFS when the zfs command cannot run at all;
// failures of the command are *CmdError (the command line and its stderr).
type ZFS interface {
	// Volume describes volume name.
	Volume(ctx context.Context, name string) (Volume, error)
	// UserProp returns the value of user property prop of dataset name
	// (a volume or a snapshot); ok is false when it is not set.
	UserProp(ctx context.Context, name, prop string) (value string, ok bool, err error)
	// SetUserProp sets user property prop of dataset name.
	SetUserProp(ctx context.Context, name, prop, value string) error
	// CreateVolume creates a sparse volume (no refreservation) of size
	// bytes with the given volblocksize (0 = the pool's default) and
	// properties, set atomically with the creation.
	CreateVolume(ctx context.Context, name string, size, blockSize uint64, props map[string]string) error
	// SetVolsize changes volsize (the volume's size) online.
	SetVolsize(ctx context.Context, name string, size uint64) error
	// Snapshot creates vol@snap and then sets props on the snapshot.
	Snapshot(ctx context.Context, vol, snap string, props map[string]string) error
	// Clone creates volume dest from snapshot (pool/vol@snap) with props
	// set atomically with the creation.
	Clone(ctx context.Context, snapshot, dest string, props map[string]string) error
	// Destroy destroys a volume or snapshot (not recursively: a volume
	// with snapshots, or a snapshot with clones, is refused by ZFS).
	Destroy(ctx context.Context, name string) error
	// DevDir is the directory of the volumes' device links (/dev/zvol).
	DevDir() string
	// Device is the block device path of volume name (DevDir()/name).
	Device(name string) string
	// WaitDevice waits until Device(name) exists (udev creates it some
	// time after the volume), at most until ctx ends.
	WaitDevice(ctx context.Context, name string) error
}

// Sentinel errors (wrapped).
var (
	ErrNotFound = errors.New("dataset does not exist")
	ErrNoZFS    = errors.New("the zfs command is not available")
)

// CmdError is a failed zfs command.
type CmdError struct {
	Cmd    string // the command line, e.g. "zfs create -p -V 1073741824 ... tank/vol"
	Stderr string // what the command printed on stderr (trimmed)
	Err    error  // how it ended (an *exec.ExitError, a timeout, ...)
}

func (e *CmdError) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("%q failed: %v", e.Cmd, e.Err)
	}
	return fmt.Sprintf("%q failed: %v: %s", e.Cmd, e.Err, e.Stderr)
}

func (e *CmdError) Unwrap() error { return e.Err }

// GoZFS is the ZFS interface on the zfs command, through go-zfs (v4).
type GoZFS struct {
	// Dir overrides DevDir (tests); "" = /dev/zvol.
	Dir string
	// Poll is the interval of WaitDevice; 0 = 50ms.
	Poll time.Duration
}

// NewGoZFS returns the zfs-command implementation. timeout bounds every
// zfs command (SIGTERM, then SIGKILL 5 s later), so a pool that hangs
// (suspended I/O) cannot hang the daemon; 0 = no limit. go-zfs keeps this
// setting process-wide (zfs.SetRunner), so the last call wins.
func NewGoZFS(timeout time.Duration) *GoZFS {
	gozfs.SetRunner(&gozfs.Runner{Timeout: timeout, Grace: 5 * time.Second})
	return &GoZFS{}
}

// call runs one go-zfs operation, turning its errors (and any panic on
// output it did not expect) into ours.
func call[T any](ctx context.Context, what string, f func() (T, error)) (v T, err error) {
	if err := ctx.Err(); err != nil {
		return v, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("zvol: %s: unexpected output from the zfs command: %v", what, r)
		}
	}()
	v, err = f()
	if err != nil {
		err = convertErr(what, err)
	}
	return v, err
}

func convertErr(what string, err error) error {
	var ze *gozfs.Error
	if !errors.As(err, &ze) {
		return fmt.Errorf("zvol: %s: %w", what, err)
	}
	ce := &CmdError{Cmd: strings.TrimSpace(ze.Debug), Stderr: strings.TrimSpace(ze.Stderr), Err: ze.Err}
	switch {
	case errors.Is(ze.Err, exec.ErrNotFound) || errors.Is(ze.Err, os.ErrNotExist):
		return fmt.Errorf("zvol: %s: %w (install zfsutils-linux, or put zfs in stmfd's PATH): %w", what, ErrNoZFS, ce)
	case strings.Contains(ce.Stderr, "dataset does not exist"):
		return fmt.Errorf("zvol: %s: %w: %w", what, ErrNotFound, ce)
	}
	return fmt.Errorf("zvol: %s: %w", what, ce)
}

// Volume implements ZFS.
func (g *GoZFS) Volume(ctx context.Context, name string) (Volume, error) {
	what := "looking up volume " + name
	ds, err := call(ctx, what, func() (*gozfs.Dataset, error) { return gozfs.GetDataset(name) })
	if err != nil {
		return Volume{}, err
	}
	if ds.Type != gozfs.DatasetVolume {
		return Volume{}, fmt.Errorf("zvol: %s is a ZFS %s, not a volume", name, ds.Type)
	}
	v := Volume{Name: ds.Name, Size: ds.Volsize, Origin: ds.Origin}
	for _, p := range []struct {
		prop string
		dst  *uint64
	}{{"volblocksize", &v.BlockSize}, {"guid", &v.GUID}} {
		s, err := call(ctx, what, func() (string, error) { return ds.GetProperty(p.prop) })
		if err != nil {
			return Volume{}, err
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return Volume{}, fmt.Errorf("zvol: %s: %s is %q, not a number", name, p.prop, s)
		}
		*p.dst = n
	}
	return v, nil
}

// dataset is a go-zfs handle for name without a lookup (go-zfs commands
// only use the name).
func dataset(name string) *gozfs.Dataset { return &gozfs.Dataset{Name: name} }

// UserProp implements ZFS.
func (g *GoZFS) UserProp(ctx context.Context, name, prop string) (string, bool, error) {
	v, err := call(ctx, "reading property "+prop+" of "+name, func() (string, error) { return dataset(name).GetProperty(prop) })
	if err != nil {
		return "", false, err
	}
	if v == "-" {
		return "", false, nil
	}
	return v, true, nil
}

// SetUserProp implements ZFS.
func (g *GoZFS) SetUserProp(ctx context.Context, name, prop, value string) error {
	_, err := call(ctx, "setting property "+prop+" of "+name, func() (struct{}, error) {
		return struct{}{}, dataset(name).SetProperty(prop, value)
	})
	return err
}

// mustNotExist fails when dataset name exists. go-zfs runs `zfs create
// -p` and `zfs clone -p`, which succeed without doing anything when the
// dataset is already there; a volume made for an LU must be new (and
// only a new one may be destroyed again when the LU cannot be made).
func mustNotExist(ctx context.Context, what, cmd, name string) error {
	_, err := call(ctx, what, func() (*gozfs.Dataset, error) { return gozfs.GetDataset(name) })
	switch {
	case err == nil:
		return fmt.Errorf("zvol: %s: %w", what, &CmdError{Cmd: cmd, Stderr: "cannot create '" + name + "': dataset already exists",
			Err: errors.New("refused")})
	case errors.Is(err, ErrNotFound):
		return nil
	}
	return err
}

// CreateVolume implements ZFS.
func (g *GoZFS) CreateVolume(ctx context.Context, name string, size, blockSize uint64, props map[string]string) error {
	what := "creating volume " + name
	if err := mustNotExist(ctx, what, "zfs create -V "+strconv.FormatUint(size, 10)+" "+name, name); err != nil {
		return err
	}
	all := map[string]string{"refreservation": "none"} // sparse, as zfs create -s
	if blockSize != 0 {
		all["volblocksize"] = strconv.FormatUint(blockSize, 10)
	}
	for k, v := range props {
		all[k] = v
	}
	_, err := call(ctx, what, func() (*gozfs.Dataset, error) { return gozfs.CreateVolume(name, size, all) })
	return err
}

// SetVolsize implements ZFS.
func (g *GoZFS) SetVolsize(ctx context.Context, name string, size uint64) error {
	_, err := call(ctx, "resizing volume "+name, func() (struct{}, error) {
		return struct{}{}, dataset(name).SetProperty("volsize", strconv.FormatUint(size, 10))
	})
	return err
}

// Snapshot implements ZFS.
func (g *GoZFS) Snapshot(ctx context.Context, vol, snap string, props map[string]string) error {
	if _, err := call(ctx, "snapshotting "+vol, func() (*gozfs.Dataset, error) { return dataset(vol).Snapshot(snap, false) }); err != nil {
		return err
	}
	// Once the snapshot exists it is finished whatever the caller does:
	// a cancel must not leave it without the LU's identity.
	for k, v := range props {
		if err := g.SetUserProp(context.WithoutCancel(ctx), vol+"@"+snap, k, v); err != nil {
			return err
		}
	}
	return nil
}

// Clone implements ZFS.
func (g *GoZFS) Clone(ctx context.Context, snapshot, dest string, props map[string]string) error {
	what := "cloning " + snapshot + " to " + dest
	if err := mustNotExist(ctx, what, "zfs clone "+snapshot+" "+dest, dest); err != nil {
		return err
	}
	ds := &gozfs.Dataset{Name: snapshot, Type: gozfs.DatasetSnapshot}
	_, err := call(ctx, what, func() (*gozfs.Dataset, error) { return ds.Clone(dest, props) })
	return err
}

// Destroy implements ZFS.
func (g *GoZFS) Destroy(ctx context.Context, name string) error {
	_, err := call(ctx, "destroying "+name, func() (struct{}, error) {
		return struct{}{}, dataset(name).Destroy(gozfs.DestroyDefault)
	})
	return err
}

// DevDir implements ZFS.
func (g *GoZFS) DevDir() string {
	if g.Dir != "" {
		return g.Dir
	}
	return DevDir
}

// Device implements ZFS.
func (g *GoZFS) Device(name string) string { return g.DevDir() + "/" + name }

// WaitDevice implements ZFS.
func (g *GoZFS) WaitDevice(ctx context.Context, name string) error {
	return WaitPath(ctx, g.Device(name), g.Poll)
}

// WaitPath polls until path exists or ctx ends.
func WaitPath(ctx context.Context, path string, poll time.Duration) error {
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("zvol: waiting for %s to appear: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}

// IsBusy reports whether err is ZFS refusing because the dataset is in use
// ("dataset is busy").
func IsBusy(err error) bool {
	var ce *CmdError
	return errors.As(err, &ce) && strings.Contains(ce.Stderr, "dataset is busy")
}

// DestroyRetry destroys name, retrying for up to wait while ZFS says the
// dataset is busy: udev probes a zvol's device for a moment after a
// writer closed it, so a destroy right after closing an LU can race it.
func DestroyRetry(ctx context.Context, z ZFS, name string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		err := z.Destroy(ctx, name)
		if err == nil || !IsBusy(err) || time.Now().Add(delay).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}
