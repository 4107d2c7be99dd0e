package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Change is one setting that differs between the running configuration
// and one re-read on reload (SIGHUP).
type Change struct {
	Key      string // the flag's name: "portal"
	Old, New string
	// Live changes are applied by a reload; the others need a restart.
	Live bool
}

// setting renders one setting of a Config for Diff.
type setting struct {
	key  string
	live bool
	get  func(*Config) string
}

// settings is every setting a reload compares, in the order reported.
// Live ones are those the daemon can apply without a restart (it says
// how in internal/daemon/reload.go); a new live setting needs both.
func settings() []setting {
	return []setting{
		{"log-level", true, func(c *Config) string { return strings.ToLower(c.LogLevel.String()) }},
		{"portal", true, func(c *Config) string { return strings.Join(c.ISCSI.Portals, ",") }},
		{"shutdown-timeout", true, func(c *Config) string { return strconv.Itoa(c.ShutdownSeconds) }},
		{"state-dir", false, func(c *Config) string { return c.StateDir }},
		{"socket", false, func(c *Config) string { return c.Socket }},
		{"demo", false, func(c *Config) string { return strconv.FormatBool(c.Demo) }},
		{"demo-size", false, func(c *Config) string { return strconv.FormatUint(c.DemoSize, 10) }},
		{"metrics-listen", true, func(c *Config) string { return c.MetricsListen }},
		{"abort-completed-task", false, func(c *Config) string { return c.ISCSI.AbortCompletedTask }},
		{"response-budget", false, func(c *Config) string { return strconv.FormatInt(c.ISCSI.ResponseBudget, 10) }},
		{"max-connections-per-portal", false, func(c *Config) string { return strconv.Itoa(c.ISCSI.MaxConnectionsPerPortal) }},
		{"max-connections-per-source", false, func(c *Config) string { return strconv.Itoa(c.ISCSI.MaxConnectionsPerSource) }},
		{"max-logins-in-progress", false, func(c *Config) string { return strconv.Itoa(c.ISCSI.MaxLoginsInProgress) }},
		{"auth-fail-delay", false, func(c *Config) string { return c.ISCSI.AuthFailDelay.String() }},
		{"idle-poll", false, func(c *Config) string { return c.ISCSI.IdlePoll.String() }},
		{"fc.adapters", false, func(c *Config) string { return fcAdapters(c.FC.Adapters) }},
		{"pprof-listen", false, func(c *Config) string { return c.PprofListen }},
		{"memory-limit", false, func(c *Config) string { return strconv.FormatInt(c.MemoryLimit, 10) }},
		// Cluster mode: membership and leases are set up once at start (cluster.go).
		{"cluster-endpoints", false, func(c *Config) string { return strings.Join(c.Cluster.Endpoints, ",") }},
		{"node-name", false, func(c *Config) string { return c.Cluster.Node }},
		{"node-id", false, func(c *Config) string { return strconv.Itoa(c.Cluster.NodeID) }},
		{"advertise-portal", false, func(c *Config) string { return strings.Join(c.Cluster.Portals, ",") }},
		{"cluster-lease-ttl", false, func(c *Config) string { return c.Cluster.LeaseTTL.String() }},
		{"cluster-prefix", false, func(c *Config) string { return c.Cluster.Prefix }},
		{"cluster-takeover-hook", false, func(c *Config) string { return c.Cluster.TakeoverHook }},
		{"cluster-release-hook", false, func(c *Config) string { return c.Cluster.ReleaseHook }},
		{"cluster-hook-timeout", false, func(c *Config) string { return c.Cluster.HookTimeout.String() }},
	}
}

// fcAdapters renders the fc section's adapters with every field, so a new
// field is compared without a change here.
func fcAdapters(as []FCAdapter) string {
	if len(as) == 0 {
		return ""
	}
	return fmt.Sprintf("%+v", as)
}

// Diff lists the settings that differ between old and next.
func Diff(old, next *Config) []Change {
	var out []Change
	for _, s := range settings() {
		o, n := s.get(old), s.get(next)
		if s.key == "portal" && samePortals(old.ISCSI.Portals, next.ISCSI.Portals) {
			continue
		}
		if o != n {
			out = append(out, Change{Key: s.key, Old: o, New: n, Live: s.live})
		}
	}
	return out
}

// samePortals compares portal lists as sets: order does not matter to
// the listeners.
func samePortals(a, b []string) bool {
	added, removed := PortalDelta(a, b)
	return len(added) == 0 && len(removed) == 0
}

// PortalDelta returns the portals in next but not old, and in old but not
// next, in their lists' order.
func PortalDelta(old, next []string) (added, removed []string) {
	for _, p := range next {
		if !slices.Contains(old, p) && !slices.Contains(added, p) {
			added = append(added, p)
		}
	}
	for _, p := range old {
		if !slices.Contains(next, p) && !slices.Contains(removed, p) {
			removed = append(removed, p)
		}
	}
	return added, removed
}
