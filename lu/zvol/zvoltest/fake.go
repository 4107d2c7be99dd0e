// Package zvoltest is an in-memory ZFS (zvol.ZFS) for tests: volumes are
// regular files in a directory, snapshots are copies of them, user
// properties are inherited by snapshots from their volume as in ZFS.
package zvoltest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/costar-project/costar/lu/zvol"
)

// Fake implements zvol.ZFS. The zero value is not usable; use New.
type Fake struct {
	dir string

	mu       sync.Mutex
	ds       map[string]*dataset
	nextGUID uint64
	calls    []string
	// FailOn, when set, is asked before every operation ("volume",
	// "userprop", "setprop", "create", "volsize", "snapshot", "clone",
	// "destroy") on a dataset; a non-nil answer is returned as the
	// operation's error, nothing is changed.
	FailOn func(op, name string) error
}

type dataset struct {
	snapshot  bool
	size      uint64
	blockSize uint64
	guid      uint64
	origin    string
	props     map[string]string
}

// New returns an empty fake whose devices are files below dir.
func New(dir string) *Fake {
	return &Fake{dir: dir, ds: map[string]*dataset{}, nextGUID: 1000}
}

// fail records the call and decides whether it fails: a cancelled
// context (as the zfs command wrapper refuses to start a command then),
// or FailOn.
func (f *Fake) fail(ctx context.Context, op, name string) error {
	f.calls = append(f.calls, op+" "+name)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fake zfs: %s %s: %w", op, name, err)
	}
	if f.FailOn != nil {
		if err := f.FailOn(op, name); err != nil {
			return &zvol.CmdError{Cmd: "zfs " + op + " " + name, Stderr: err.Error(), Err: err}
		}
	}
	return nil
}

// Calls returns the operations done so far ("create tank/v", ...).
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Exists reports whether dataset name exists.
func (f *Fake) Exists(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ds[name] != nil
}

// Names lists the datasets, sorted.
func (f *Fake) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.ds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Props returns a copy of dataset name's own properties.
func (f *Fake) Props(name string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.ds[name]
	if d == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range d.props {
		out[k] = v
	}
	return out
}

// Rename renames a volume and its snapshots (zfs rename): same guid, new name.
func (f *Fake) Rename(from, to string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.ds[from]
	if d == nil || f.ds[to] != nil {
		return fmt.Errorf("rename %s %s: bad names", from, to)
	}
	if err := os.MkdirAll(filepath.Dir(f.Device(to)), 0o755); err != nil {
		return err
	}
	if err := os.Rename(f.Device(from), f.Device(to)); err != nil {
		return err
	}
	delete(f.ds, from)
	f.ds[to] = d
	for n, s := range f.ds { // its snapshots follow, and clones' origins with them
		if strings.HasPrefix(n, from+"@") {
			nn := to + n[len(from):]
			if err := os.Rename(f.snapFile(n), f.snapFile(nn)); err != nil {
				return err
			}
			delete(f.ds, n)
			f.ds[nn] = s
			for _, o := range f.ds {
				if o.origin == n {
					o.origin = nn
				}
			}
		}
	}
	return nil
}

// Receive makes volume to a copy of snapshot from (zfs send [-p] | zfs
// recv to): a new dataset guid, the data of the snapshot, and with
// withProps the snapshot's user properties as received properties.
func (f *Fake) Receive(from, to string, withProps bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.ds[from]
	if s == nil || !s.snapshot || f.ds[to] != nil {
		return fmt.Errorf("receive %s %s: bad names", from, to)
	}
	vol, _, _ := strings.Cut(from, "@")
	d := &dataset{size: s.size, blockSize: s.blockSize, guid: f.guid(), props: map[string]string{}}
	if withProps {
		for k, v := range f.ds[vol].props {
			d.props[k] = v
		}
		for k, v := range s.props {
			d.props[k] = v
		}
	}
	if err := f.copyFile(f.snapFile(from), f.Device(to)); err != nil {
		return err
	}
	f.ds[to] = d
	return nil
}

func (f *Fake) guid() uint64 {
	f.nextGUID += 7919
	return f.nextGUID
}

func (f *Fake) snapFile(name string) string {
	return filepath.Join(f.dir, ".snapshots", strings.ReplaceAll(name, "/", "_"))
}

func (f *Fake) copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func notFound(name string) error {
	return fmt.Errorf("fake zfs: %w: %w", zvol.ErrNotFound,
		&zvol.CmdError{Cmd: "zfs list " + name, Stderr: "cannot open '" + name + "': dataset does not exist", Err: fmt.Errorf("exit status 1")})
}

// Volume implements zvol.ZFS.
func (f *Fake) Volume(ctx context.Context, name string) (zvol.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(ctx, "volume", name); err != nil {
		return zvol.Volume{}, err
	}
	d := f.ds[name]
	if d == nil || d.snapshot {
		return zvol.Volume{}, notFound(name)
	}
	return zvol.Volume{Name: name, GUID: d.guid, Size: d.size, BlockSize: d.blockSize, Origin: d.origin}, nil
}

// UserProp implements zvol.ZFS (snapshots inherit from their volume).
func (f *Fake) UserProp(ctx context.Context, name, prop string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(ctx, "userprop", name); err != nil {
		return "", false, err
	}
	d := f.ds[name]
	if d == nil {
		return "", false, notFound(name)
	}
	if v, ok := d.props[prop]; ok {
		return v, true, nil
	}
	if d.snapshot {
		vol, _, _ := strings.Cut(name, "@")
		if p := f.ds[vol]; p != nil {
			v, ok := p.props[prop]
			return v, ok, nil
		}
	}
	return "", false, nil
}

// SetUserProp implements zvol.ZFS.
func (f *Fake) SetUserProp(ctx context.Context, name, prop, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(ctx, "setprop", name); err != nil {
		return err
	}
	d := f.ds[name]
	if d == nil {
		return notFound(name)
	}
	if len(value) > zvol.MaxPropLen {
		return &zvol.CmdError{Cmd: "zfs set " + prop, Stderr: "property value too long", Err: fmt.Errorf("exit status 1")}
	}
	d.props[prop] = value
	return nil
}

// CreateVolume implements zvol.ZFS.
func (f *Fake) CreateVolume(ctx context.Context, name string, size, blockSize uint64, props map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(ctx, "create", name); err != nil {
		return err
	}
	if f.ds[name] != nil {
		return &zvol.CmdError{Cmd: "zfs create " + name, Stderr: "cannot create '" + name + "': dataset already exists", Err: fmt.Errorf("exit status 1")}
	}
	if blockSize == 0 {
		blockSize = 8192
	}
	if size == 0 || size%blockSize != 0 {
		return &zvol.CmdError{Cmd: "zfs create " + name, Stderr: "volume size must be a multiple of volume block size", Err: fmt.Errorf("exit status 1")}
	}
	dev := f.Device(name)
	if err := os.MkdirAll(filepath.Dir(dev), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		return err
	}
	if err := os.Truncate(dev, int64(size)); err != nil {
		return err
	}
	d := &dataset{size: size, blockSize: blockSize, guid: f.guid(), props: map[string]string{}}
	for k, v := range props {
		d.props[k] = v
	}
	f.ds[name] = d
	return nil
}

// SetVolsize implements zvol.ZFS.
func (f *Fake) SetVolsize(ctx context.Context, name string, size uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(ctx, "volsize", name); err != nil {
		return err
	}
	d := f.ds[name]
	if d == nil || d.snapshot {
		return notFound(name)
	}
	if size == 0 || size%d.blockSize != 0 {
		return &zvol.CmdError{Cmd: "zfs set volsize", Stderr: "volume size must be a multiple of volume block size", Err: fmt.Errorf("exit status 1")}
	}
	if err := os.Truncate(f.Device(name), int64(size)); err != nil {
		return err
	}
	d.size = size
	return nil
}

// Snapshot implements zvol.ZFS.
func (f *Fake) Snapshot(ctx context.Context, vol, snap string, props map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := vol + "@" + snap
	if err := f.fail(ctx, "snapshot", name); err != nil {
		return err
	}
	d := f.ds[vol]
	if d == nil || d.snapshot {
		return notFound(vol)
	}
	if f.ds[name] != nil {
		return &zvol.CmdError{Cmd: "zfs snapshot " + name, Stderr: "dataset already exists", Err: fmt.Errorf("exit status 1")}
	}
	if err := f.copyFile(f.Device(vol), f.snapFile(name)); err != nil {
		return err
	}
	s := &dataset{snapshot: true, size: d.size, blockSize: d.blockSize, guid: f.guid(), props: map[string]string{}}
	for k, v := range props {
		s.props[k] = v
	}
	f.ds[name] = s
	return nil
}

// Clone implements zvol.ZFS.
func (f *Fake) Clone(ctx context.Context, snapshot, dest string, props map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(ctx, "clone", dest); err != nil {
		return err
	}
	s := f.ds[snapshot]
	if s == nil || !s.snapshot {
		return notFound(snapshot)
	}
	if f.ds[dest] != nil {
		return &zvol.CmdError{Cmd: "zfs clone " + dest, Stderr: "dataset already exists", Err: fmt.Errorf("exit status 1")}
	}
	if err := f.copyFile(f.snapFile(snapshot), f.Device(dest)); err != nil {
		return err
	}
	d := &dataset{size: s.size, blockSize: s.blockSize, guid: f.guid(), origin: snapshot, props: map[string]string{}}
	for k, v := range props {
		d.props[k] = v
	}
	f.ds[dest] = d
	return nil
}

// Destroy implements zvol.ZFS.
func (f *Fake) Destroy(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(ctx, "destroy", name); err != nil {
		return err
	}
	d := f.ds[name]
	if d == nil {
		return notFound(name)
	}
	for n, o := range f.ds {
		if strings.HasPrefix(n, name+"@") || (d.snapshot && o.origin == name) {
			return &zvol.CmdError{Cmd: "zfs destroy " + name, Stderr: "cannot destroy '" + name + "': it has dependents", Err: fmt.Errorf("exit status 1")}
		}
	}
	if d.snapshot {
		os.Remove(f.snapFile(name))
	} else {
		os.Remove(f.Device(name))
	}
	delete(f.ds, name)
	return nil
}

// DevDir implements zvol.ZFS: <dir>/dev/zvol.
func (f *Fake) DevDir() string { return filepath.Join(f.dir, "dev", "zvol") }

// Device implements zvol.ZFS.
func (f *Fake) Device(name string) string { return filepath.Join(f.DevDir(), name) }

// WaitDevice implements zvol.ZFS.
func (f *Fake) WaitDevice(ctx context.Context, name string) error {
	if _, err := os.Stat(f.Device(name)); err != nil {
		return fmt.Errorf("fake zfs: %s has no device: %w", name, err)
	}
	return nil
}
