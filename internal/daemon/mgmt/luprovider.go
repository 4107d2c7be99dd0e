package mgmt

import (
	"context"
	"errors"

	"github.com/costar-project/costar/stmf"
)

// LUSpec is a validated create-lu request handed to the LU provider.
type LUSpec struct {
	DataFile  string
	MetaFile  string // "" = metadata inside the data file (or the zvol)
	Size      uint64 // 0 = the backing store's current size
	BlockSize uint32 // 0 = provider default (512)
	// GUID, when not zero, is used verbatim. Otherwise the provider
	// generates one from OUI (nil: 0x00144F) and HostID (nil: this host).
	GUID    stmf.GUID
	OUI     *uint32
	HostID  *[4]byte
	Alias   string
	MgmtURL string
	VID     string // "" = provider default
	PID     string
	Serial  string
	WCD     bool // write cache disabled
	WP      bool // write protected
	Thin    bool // thin provisioned: UNMAP, WRITE SAME (UNMAP), GET LBA STATUS
	// SoftThreshold, for thin LUs: percent of the backing file system in
	// use that raises THIN PROVISIONING SOFT THRESHOLD REACHED (0 = off).
	SoftThreshold uint8
	// Preallocation is api.PreallocFalloc or api.PreallocFull to allocate
	// the part of the data file the create makes; "" leaves it sparse.
	Preallocation string
}

// LUInfo is what the LU provider reports about an open LU.
type LUInfo struct {
	GUID      stmf.GUID
	DataFile  string
	MetaFile  string
	Size      uint64
	BlockSize uint32
	Alias     string
	MgmtURL   string
	VID       string
	PID       string
	Serial    string
	WCD       bool
	WP        bool
	Thin      bool
	// SoftThreshold is the thin LU's soft threshold in percent (0 = off).
	SoftThreshold uint8
	// ErrorState is the write-back failure the LU remembers ("sync failed
	// at <time>: <error>"), "" when there is none. online-lu after
	// offline-lu clears it (ErrorClearer).
	ErrorState string
}

// LU is an open logical unit, as the LU provider hands it over.
type LU interface {
	stmf.LogicalUnit
	Info() LUInfo
	Close() error
}

// Resizer is implemented by LUs that can change size online (modify-lu -s).
// The manager raises CAPACITY DATA HAS CHANGED after a successful resize.
type Resizer interface {
	Resize(ctx context.Context, size uint64) error
}

// Discarder is implemented by LUs that can undo their creation: Discard
// closes the LU and removes what Create made (a new data file is removed,
// a grown one shrunk back). The manager calls it when a created LU cannot
// be adopted, a cancelled create among them.
type Discarder interface {
	Discard()
}

// ErrorClearer is implemented by LUs that remember a write-back failure
// (Info().ErrorState); ClearError forgets it and reports whether there
// was one.
type ErrorClearer interface {
	ClearError() bool
}

// LUChange is a modify-lu property change; nil fields stay.
type LUChange struct {
	Alias   *string
	MgmtURL *string
	WCD     *bool
	WP      *bool
	// SoftThreshold changes a thin LU's soft threshold (0 = off).
	SoftThreshold *uint8
}

// PropSetter is implemented by LUs whose modifiable properties (alias,
// mgmt-url, wcd, wp) can change online; the provider persists them with
// the LU's metadata before returning.
type PropSetter interface {
	SetProps(ctx context.Context, c LUChange) error
}

// LUProvider creates and opens LUs. Errors should wrap one of the Err*
// sentinels below so the CLI can print COMSTAR's message.
type LUProvider interface {
	Create(ctx context.Context, spec LUSpec) (LU, error)
	// Import opens an LU from the metadata stored with its data. file is
	// the data file or, for separate metadata, the meta file; metaFile is
	// the meta file when known.
	Import(ctx context.Context, file, metaFile string) (LU, error)
}

// Errors an LU provider (or its adapter) wraps so the manager can classify
// failures.
var (
	ErrDataFile      = errors.New("data file error")
	ErrMetaFile      = errors.New("meta file error")
	ErrFileSize      = errors.New("file size invalid")
	ErrSizeRange     = errors.New("invalid size")
	ErrBlockSize     = errors.New("invalid block size")
	ErrNotAnLU       = errors.New("no LU metadata found") // import of a file that holds no LU
	ErrProviderLimit = errors.New("not supported by the LU provider")
)
