package api

import "testing"

func TestCanonicalALUAState(t *testing.T) {
	for in, want := range map[string]string{
		"active-optimized": ALUAActiveOptimized, "Active/Optimized": ALUAActiveOptimized, "ao": ALUAActiveOptimized,
		"active-nonoptimized": ALUAActiveNonOptimized, "active-non-optimized": ALUAActiveNonOptimized,
		"active/non-optimized": ALUAActiveNonOptimized, "AN": ALUAActiveNonOptimized,
		"standby": ALUAStandby, " Standby ": ALUAStandby, "s": ALUAStandby,
		"unavailable": ALUAUnavailable, "u": ALUAUnavailable,
		"transitioning": ALUATransitioning, "t": ALUATransitioning,
		"": "", "active": "", "standbyy": "", "offline": "", "0": "",
	} {
		got, ok := CanonicalALUAState(in)
		if got != want || ok != (want != "") {
			t.Errorf("CanonicalALUAState(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, n := range ALUAStateNames() {
		if c, ok := CanonicalALUAState(n); !ok || c != n {
			t.Errorf("%q is not its own canonical name", n)
		}
		if l := ALUAStateLabel(n); l == n || l == "" {
			t.Errorf("no label for %q", n)
		}
	}
}
