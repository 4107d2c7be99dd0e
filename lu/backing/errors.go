package backing

import "errors"

// Sentinel errors stores wrap (with %w) so that the device server can
// answer with the right sense data without knowing the store.
var (
	// ErrNoMeta: the store holds no valid LU metadata.
	ErrNoMeta = errors.New("lu: no valid LU metadata")
	// ErrNoSpace: the store ran out of space (ENOSPC, EDQUOT, a full
	// pool): SPACE ALLOCATION FAILED WRITE PROTECT.
	ErrNoSpace = errors.New("backing store is out of space")
	// ErrReadOnly: the store cannot be written: WRITE PROTECTED.
	ErrReadOnly = errors.New("backing store is read-only")
	// ErrNotSupported: the store lacks the operation.
	ErrNotSupported = errors.New("operation not supported by the backing store")
	// ErrMetaTooLarge: the metadata does not fit the store's slot.
	ErrMetaTooLarge = errors.New("LU metadata too large for the store")
	// ErrFenced: a newer owner recorded a bigger fencing token with the
	// LU (Fencer): this node was deposed and must not modify the store.
	// NOT READY, LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE.
	ErrFenced = errors.New("backing store fenced: a newer owner holds the LU (fencing token superseded)")
)
