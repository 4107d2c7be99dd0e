package iscsi

import (
	"maps"
	"slices"
	"testing"
)

// GroupPortals follows the targets' portal groups live, with the actual
// addresses of port-0 portals.
func TestGroupPortals(t *testing.T) {
	env := startServer(t, func(c *Config) { c.Portals = []string{"127.0.0.1:0", "127.0.0.5:0"} })
	def := []string{addrOn(t, env.srv, "127.0.0.1"), addrOn(t, env.srv, "127.0.0.5")}
	slices.Sort(def)
	exists := false // pgTarget is served
	for _, step := range []struct {
		name string
		pgs  []PortalGroup // pgTarget's groups; nil: remove it
		want map[uint16][]string
	}{
		{"default group only", nil, map[uint16][]string{1: def}},
		{"two portals in group 2", []PortalGroup{{Tag: 2, Portals: []string{"127.0.0.2:0", "127.0.0.6:0"}}},
			map[uint16][]string{1: def, 2: {"127.0.0.2", "127.0.0.6"}}},
		{"moved to group 3", []PortalGroup{{Tag: 3, Portals: []string{"127.0.0.3:0"}}},
			map[uint16][]string{1: def, 3: {"127.0.0.3"}}},
		{"removed", nil, map[uint16][]string{1: def}},
	} {
		t.Run(step.name, func(t *testing.T) {
			switch {
			case step.pgs == nil && exists:
				if err := env.srv.RemoveTarget(pgTarget); err != nil {
					t.Fatal(err)
				}
			case step.pgs != nil && exists:
				if err := env.srv.UpdateTarget(TargetConfig{Name: pgTarget, PortalGroups: step.pgs}); err != nil {
					t.Fatal(err)
				}
			case step.pgs != nil:
				if err := env.srv.AddTarget(TargetConfig{Name: pgTarget, PortalGroups: step.pgs}); err != nil {
					t.Fatal(err)
				}
			}
			exists = step.pgs != nil
			// Port-0 portals: expand the wanted IPs to the listeners' addresses.
			want := map[uint16][]string{}
			for tag, ps := range step.want {
				for _, p := range ps {
					if !slices.Contains(def, p) {
						p = addrOn(t, env.srv, p)
					}
					want[tag] = append(want[tag], p)
				}
				slices.Sort(want[tag])
			}
			got := env.srv.GroupPortals()
			if !maps.EqualFunc(got, want, slices.Equal) {
				t.Fatalf("GroupPortals() = %v, want %v", got, want)
			}
		})
	}
}
