// Package zvol makes ZFS volumes (zvols) backing stores for costar LUs the
// way COMSTAR does on illumos: the LU's identity (GUID, vid/pid/serial,
// alias, block size, flags) and its persistent reservation state live in
// the zvol itself, as ZFS user properties, so the LU survives reboots,
// zpool export/import and `zfs send -p | zfs recv`, and a clone is
// recognised as a clone (see Meta and Classify).
//
// The package talks to ZFS through the small ZFS interface (GoZFS runs the
// zfs command through github.com/mistifyio/go-zfs; tests use a fake) and
// knows nothing about SCSI: package lu turns a zvol into a Device.
package zvol

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// DevDir is where udev (OpenZFS's 60-zvol.rules) links zvols by name:
// /dev/zvol/<pool>/<dataset>.
const DevDir = "/dev/zvol"

// MaxNameLen is the longest dataset name ZFS accepts (ZFS_MAX_DATASET_NAME_LEN - 1).
const MaxNameLen = 255

// ErrNotZvolPath is returned (wrapped) by ParsePath for a path that does
// not name a zvol.
var ErrNotZvolPath = errors.New("not a zvol path")

// Path is a parsed zvol device path.
type Path struct {
	// Name is the dataset name, e.g. "tank/vm-100-disk-0".
	Name string
	// Alt is a second reading of an ambiguous path, "" when there is none:
	// /dev/zvol/rdsk/a/b is the illumos spelling of zvol a/b (Name), but on
	// Linux it could also be dataset rdsk/a/b of a pool called rdsk (Alt).
	// Callers prefer Name and fall back to Alt when Name does not exist.
	Alt string
}

// ParsePath recognises the spellings of a zvol device path:
//
//	/dev/zvol/<pool>/<vol>        Linux (OpenZFS udev rules)
//	/dev/zvol/rdsk/<pool>/<vol>   illumos raw device, as COMSTAR users and
//	/dev/zvol/dsk/<pool>/<vol>    Proxmox's Comstar driver write it
//
// The path is cleaned first (duplicate slashes, "."; ".." is refused); it must name a
// volume below a pool (at least two components) with valid dataset names.
// Snapshot devices (pool/vol@snap) are not accepted.
func ParsePath(p string) (Path, error) { return ParsePathIn(DevDir, p) }

// ParsePathIn is ParsePath for zvol links below dir instead of /dev/zvol
// (ZFS.DevDir; tests use a directory of their own).
func ParsePathIn(dir, p string) (Path, error) {
	if p == "" {
		return Path{}, fmt.Errorf("zvol: empty path: %w", ErrNotZvolPath)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return Path{}, fmt.Errorf("zvol: %s: \"..\" in a device path: %w", p, ErrNotZvolPath)
		}
	}
	clean := filepath.Clean(p)
	rest, ok := strings.CutPrefix(clean, filepath.Clean(dir)+"/")
	if !ok {
		return Path{}, fmt.Errorf("zvol: %s is not below %s: %w", p, dir, ErrNotZvolPath)
	}
	parts := strings.Split(rest, "/")
	var out Path
	if (parts[0] == "rdsk" || parts[0] == "dsk") && len(parts) >= 3 {
		out.Name = strings.Join(parts[1:], "/")
		out.Alt = rest // a pool really called rdsk or dsk
	} else {
		out.Name = rest
	}
	if err := ValidVolumeName(out.Name); err != nil {
		return Path{}, fmt.Errorf("zvol: %s: %w: %w", p, ErrNotZvolPath, err)
	}
	if out.Alt != "" && ValidVolumeName(out.Alt) != nil {
		out.Alt = ""
	}
	return out, nil
}

// IsZvolPath reports whether p is spelled as a zvol device path.
func IsZvolPath(p string) bool {
	_, err := ParsePath(p)
	return err == nil
}

// DevicePath is the Linux device path of volume name.
func DevicePath(name string) string { return DevDir + "/" + name }

// ValidVolumeName checks a volume's dataset name: a pool name and at least
// one more component, each made of the characters ZFS allows
// (alphanumerics, '_', '-', ':', '.', ' '), no "." or ".." component, no
// snapshot or bookmark part, at most MaxNameLen bytes. The pool name must
// start with a letter.
func ValidVolumeName(name string) error {
	if name == "" {
		return errors.New("empty dataset name")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("dataset name longer than %d bytes", MaxNameLen)
	}
	parts := strings.Split(name, "/")
	if len(parts) < 2 {
		return fmt.Errorf("%q names a pool, not a volume in it (want pool/volume)", name)
	}
	for _, c := range parts {
		if err := validComponent(c); err != nil {
			return fmt.Errorf("dataset name %q: %w", name, err)
		}
	}
	if p := parts[0]; !isLetter(p[0]) {
		return fmt.Errorf("dataset name %q: pool name must start with a letter", name)
	}
	return nil
}

// ValidSnapshotName checks the part after '@' of a snapshot name.
func ValidSnapshotName(snap string) error {
	if snap == "" {
		return errors.New("empty snapshot name")
	}
	if len(snap) > MaxNameLen {
		return fmt.Errorf("snapshot name longer than %d bytes", MaxNameLen)
	}
	if err := validComponent(snap); err != nil {
		return fmt.Errorf("snapshot name %q: %w", snap, err)
	}
	return nil
}

// SplitSnapshot splits "pool/vol@snap" into its volume and snapshot parts,
// both validated.
func SplitSnapshot(full string) (vol, snap string, err error) {
	vol, snap, ok := strings.Cut(full, "@")
	if !ok {
		return "", "", fmt.Errorf("%q is not a snapshot name (want pool/volume@snapshot)", full)
	}
	if err := ValidVolumeName(vol); err != nil {
		return "", "", err
	}
	if err := ValidSnapshotName(snap); err != nil {
		return "", "", err
	}
	if len(full) > MaxNameLen {
		return "", "", fmt.Errorf("snapshot name longer than %d bytes", MaxNameLen)
	}
	return vol, snap, nil
}

func validComponent(c string) error {
	switch c {
	case "":
		return errors.New("empty component")
	case ".", "..":
		return fmt.Errorf("component %q is not allowed", c)
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if isLetter(b) || (b >= '0' && b <= '9') || b == '_' || b == '-' || b == ':' || b == '.' || b == ' ' {
			continue
		}
		return fmt.Errorf("invalid character %q", b)
	}
	return nil
}

func isLetter(b byte) bool { return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') }
