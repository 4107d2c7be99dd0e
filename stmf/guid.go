package stmf

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID names a logical unit: a 16-byte NAA IEEE Registered Extended
// identifier (NAA 6). stmfadm shows it upper-case, sbdadm lower-case.
type GUID [16]byte

// String is the upper-case 32-hex-digit form stmfadm prints.
func (g GUID) String() string { return strings.ToUpper(hex.EncodeToString(g[:])) }

// Lower is the lower-case form sbdadm prints.
func (g GUID) Lower() string { return hex.EncodeToString(g[:]) }

// IsZero reports whether g is unset.
func (g GUID) IsZero() bool { return g == GUID{} }

// ParseGUID accepts 32 hex digits in either case (COMSTAR accepts both).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 32 {
		return g, fmt.Errorf("invalid GUID %q: want 32 hex digits", s)
	}
	if _, err := hex.Decode(g[:], []byte(s)); err != nil {
		return g, fmt.Errorf("invalid GUID %q: %w", s, err)
	}
	if g[0]>>4 != 6 {
		return g, fmt.Errorf("invalid GUID %q: not an NAA type 6 identifier", s)
	}
	return g, nil
}
