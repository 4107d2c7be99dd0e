package api

import (
	"strings"
)

// ALUA: asymmetric logical unit access per target port group. A target
// port group is an iSCSI portal group, named by its portal group tag (1 =
// the default portal group); a state applies to every LU on every port in
// the group. stmfadm set-alua-state changes it, list-state shows it.

// MethodSetALUAState is stmfadm set-alua-state.
const MethodSetALUAState = "SetALUAState"

// ALUA error codes.
const (
	CodeInvalidALUAState Code = "INVALID_ALUA_STATE"
	CodeInvalidTPGTag    Code = "INVALID_TPG_TAG"   // not 1..65535
	CodeTPGTagNotFound   Code = "TPG_TAG_NOT_FOUND" // no portal group uses the tag
)

// Asymmetric access states as the API and stmfadm name them.
const (
	ALUAActiveOptimized    = "active-optimized"
	ALUAActiveNonOptimized = "active-nonoptimized"
	ALUAStandby            = "standby"
	ALUAUnavailable        = "unavailable"
	ALUATransitioning      = "transitioning"
)

// ALUAStateNames returns the states in SPC-4 order.
func ALUAStateNames() []string {
	return []string{ALUAActiveOptimized, ALUAActiveNonOptimized, ALUAStandby, ALUAUnavailable, ALUATransitioning}
}

// CanonicalALUAState returns the API name of an access state given in any
// accepted spelling, case-insensitive: the API names, stmf's names
// ("active/optimized", "active/non-optimized", ...) and short forms (ao,
// an, s, u, t).
func CanonicalALUAState(s string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "active-optimized", "active/optimized", "ao":
		return ALUAActiveOptimized, true
	case "active-nonoptimized", "active-non-optimized", "active/non-optimized", "active/nonoptimized", "an":
		return ALUAActiveNonOptimized, true
	case "standby", "s":
		return ALUAStandby, true
	case "unavailable", "u":
		return ALUAUnavailable, true
	case "transitioning", "t":
		return ALUATransitioning, true
	}
	return "", false
}

// ALUAStateLabel is how stmfadm list-state prints a state.
func ALUAStateLabel(state string) string {
	switch state {
	case ALUAActiveOptimized:
		return "Active/Optimized"
	case ALUAActiveNonOptimized:
		return "Active/Non-optimized"
	case ALUAStandby:
		return "Standby"
	case ALUAUnavailable:
		return "Unavailable"
	case ALUATransitioning:
		return "Transitioning"
	}
	return state
}

// ALUAGroup is a target port group and its asymmetric access state.
type ALUAGroup struct {
	Tag   uint16 `json:"tag"`
	State string `json:"state"` // one of ALUAStateNames()
	// Targets are the configured targets bound to the portal group tag.
	Targets []string `json:"targets"`
}

// SetALUAStateRequest is stmfadm set-alua-state -g <tag> <state>. Tag is
// an int so that out-of-range values get a clear error, not a decoding one.
type SetALUAStateRequest struct {
	Tag   int    `json:"tag"`
	State string `json:"state"`
}
