package backing

import "fmt"

// Meta is what a store keeps for an LU besides its blocks.
type Meta struct {
	GUID      [16]byte
	Size      uint64 // LU size in bytes
	BlockSize uint32
	Flags     uint32 // FlagWCD, FlagWP
	VendorID  string
	ProductID string
	Serial    string
	Alias     string
	MgmtURL   string
	DataFile  string // where the data lived when last written (informational)
	PR        []byte // persistent reservation state (opaque here)

	Thin          bool
	SoftThreshold uint8 // percent, 0 = off

	// FenceToken is the fencing token of the newest owner that fenced the
	// LU in cluster mode (Fencer); 0 = never fenced. It only grows.
	FenceToken int64

	// Unknown holds fields a newer version wrote, written back unchanged.
	Unknown []Field
}

// Field is a metadata field this version does not know.
type Field struct {
	Tag uint16
	Val []byte
}

// Meta flags.
const (
	FlagWCD = 1 << 0 // write cache disabled
	FlagWP  = 1 << 1 // write protected
)

// Limits every store checks metadata against.
const (
	MaxSize          = 1 << 62 // keeps byte offsets well inside int64
	MaxSoftThreshold = 100
)

// ValidBlockSize reports whether bs is a power of two from 512 to 65536.
func ValidBlockSize(bs uint32) bool {
	return bs >= 512 && bs <= 65536 && bs&(bs-1) == 0
}

// Clone returns a deep copy of m.
func (m *Meta) Clone() *Meta {
	c := *m
	c.PR = append([]byte(nil), m.PR...)
	c.Unknown = append([]Field(nil), m.Unknown...)
	return &c
}

// Check validates what any store needs to hold an LU.
func (m *Meta) Check() error {
	switch {
	case m.GUID == [16]byte{}:
		return fmt.Errorf("zero GUID")
	case !ValidBlockSize(m.BlockSize):
		return fmt.Errorf("invalid block size %d", m.BlockSize)
	case m.Size == 0 || m.Size%uint64(m.BlockSize) != 0 || m.Size > MaxSize:
		return fmt.Errorf("invalid LU size %d", m.Size)
	case m.SoftThreshold > MaxSoftThreshold:
		return fmt.Errorf("soft threshold %d%%: must be 0 (off) to %d", m.SoftThreshold, MaxSoftThreshold)
	}
	return nil
}
