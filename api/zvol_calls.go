package api

import (
	"fmt"
	"strings"
)

// ZFS volume (zvol) calls: beyond COMSTAR, stmfd creates, snapshots,
// clones and destroys the zvols behind LUs. An LU on a zvol keeps its
// identity in a ZFS user property of the zvol (see package lu/zvol).
const (
	// MethodCreateZvolLU is create-lu -p zvol=<pool/name> -s <size>: a
	// sparse zvol and the LU on it, in one step (the zvol is destroyed
	// again when the LU cannot be made).
	MethodCreateZvolLU = "CreateZvolLU"
	// MethodImportZvolLU is import-lu of a zvol with properties: a clone
	// or a copy received under another name gets a new GUID unless GUID
	// is given.
	MethodImportZvolLU = "ImportZvolLU"
	// MethodSnapshotLU is snapshot-lu <GUID> <name>.
	MethodSnapshotLU = "SnapshotLU"
	// MethodCloneLU is clone-lu <GUID>@<name>: a new zvol cloned from the
	// snapshot and a new LU (new GUID) on it, ready for add-view.
	MethodCloneLU = "CloneLU"
	// MethodDestroyLU is delete-lu --destroy-zvol: the LU is deleted and
	// its zvol destroyed. When ZFS refuses (snapshots, clones, busy) the LU
	// stays as it was.
	MethodDestroyLU = "DestroyLU"
)

// CodeZFS: a zfs command failed; the message names the command and holds
// its stderr.
const CodeZFS Code = "ZFS_ERROR"

// CreateZvolLURequest is create-lu -p zvol=<pool/name> -s <size>
// [-p blk=<volblocksize>]: Zvol is the dataset to create, Size its volsize
// (and the LU's size), VolBlockSize its volblocksize in bytes (0 = the
// pool's default). Props are the LU's other create-lu properties; the
// LU's logical block size is Props.BlockSize (default 512).
type CreateZvolLURequest struct {
	Zvol         string  `json:"zvol"`
	Size         uint64  `json:"size"`
	VolBlockSize uint32  `json:"volblocksize,omitempty"`
	Props        LUProps `json:"props"`
}

// ImportZvolLURequest is import-lu <zvol device> [-p guid=...].
type ImportZvolLURequest struct {
	File string `json:"file"`
	// GUID, when set, names the imported LU (32 hex digits) whatever the
	// metadata says; otherwise a copy gets a new GUID and the LU's own
	// zvol keeps its GUID.
	GUID string `json:"guid,omitempty"`
	// Alias replaces the stored alias when set.
	Alias *string `json:"alias,omitempty"`
}

// SnapshotLURequest is snapshot-lu.
type SnapshotLURequest struct {
	GUID string `json:"guid"`
	Name string `json:"name"` // the snapshot's name, without the volume part
}

// Snapshot is a snapshot of an LU's zvol.
type Snapshot struct {
	GUID string `json:"guid"` // the LU
	Name string `json:"name"` // pool/vol@name
}

// CloneLURequest is clone-lu. Source is "<GUID>@<snapshot>" or a snapshot
// name "pool/vol@snapshot". Zvol is the new volume's name, default
// "<source volume>-<snapshot>" (made unique). Props are those create-lu
// takes; the block size always follows the source.
type CloneLURequest struct {
	Source string  `json:"source"`
	Zvol   string  `json:"zvol,omitempty"`
	Props  LUProps `json:"props"`
}

// DestroyLURequest is delete-lu --destroy-zvol.
type DestroyLURequest struct {
	GUID      string `json:"guid"`
	KeepViews bool   `json:"keep_views,omitempty"`
}

// SplitCloneSource splits a clone-lu operand: "<GUID>@<snap>" gives the
// GUID (upper case) and the snapshot name; "pool/vol@snap" gives the
// volume and snapshot in vol and snap with guid "".
func SplitCloneSource(s string) (guid, vol, snap string, err error) {
	left, snap, ok := strings.Cut(s, "@")
	if !ok || left == "" || snap == "" {
		return "", "", "", fmt.Errorf("%q: want <GUID>@<snapshot> or <pool/volume>@<snapshot>", s)
	}
	if strings.Contains(snap, "@") {
		return "", "", "", fmt.Errorf("%q: more than one '@'", s)
	}
	if IsGUID(left) {
		return strings.ToUpper(left), "", snap, nil
	}
	if !strings.Contains(left, "/") {
		return "", "", "", fmt.Errorf("%q: %q is neither a GUID (32 hex digits) nor a pool/volume name", s, left)
	}
	return "", left, snap, nil
}

// ValidVolBlockSize reports whether n is a volblocksize ZFS accepts for a
// new volume: a power of two from 512 bytes to 128 KiB (larger needs the
// large_blocks pool feature and is refused here).
func ValidVolBlockSize(n uint32) bool { return n >= 512 && n <= 128<<10 && n&(n-1) == 0 }
