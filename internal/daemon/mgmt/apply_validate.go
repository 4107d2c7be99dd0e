package mgmt

import (
	"fmt"
	"slices"

	"github.com/costar-project/costar/api"
)

// normalise validates the Config's own consistency and puts names in the
// canonical form the daemon stores, so that comparing is exact. The rules
// are the single verbs' (names, GUIDs, LUNs, one group per member, one
// view per host group and target group pair of an LU).
func (p *planner) normalise() error {
	w := &p.want
	if d := w.Defaults; d != nil {
		switch d.Auth {
		case "", "none", "chap", "radius":
		default:
			return api.Errorf(api.CodeInvalidAuth, "defaults", "auth must be none, chap or radius")
		}
		if d.RadiusServer != "" {
			c, err := api.CanonicalHostPort(d.RadiusServer, radiusPort)
			if err != nil {
				return planErr(d.RadiusServer, "invalid RADIUS server address")
			}
			d.RadiusServer = c
		}
		var isns []string
		for _, s := range d.ISNSServers {
			c, err := api.CanonicalHostPort(s, isnsPort)
			if err != nil {
				return planErr(s, "invalid iSNS server address")
			}
			if !slices.Contains(isns, c) {
				isns = append(isns, c)
			}
		}
		d.ISNSServers = isns
	}
	seen := map[string]bool{}
	dup := func(kind, name string) error {
		k := kind + "\x00" + name
		if seen[k] {
			return planErr(name, "%s listed twice", kind)
		}
		seen[k] = true
		return nil
	}
	for i := range w.TPGs {
		t := &w.TPGs[i]
		var ps []string
		for _, s := range t.Portals {
			c, err := api.CanonicalPortal(s)
			if err != nil {
				return api.Errorf(api.CodeInvalidPortal, s, "%v", err)
			}
			ps = append(ps, c)
		}
		t.Portals = ps
		if err := dup("portal group", t.Name); err != nil {
			return err
		}
	}
	for i := range w.Targets {
		t := &w.Targets[i]
		c, ok := api.CanonicalDeviceID(t.Name)
		if !ok {
			return api.Errorf(api.CodeInvalidDeviceID, t.Name, "unrecognized target name")
		}
		t.Name = c
		switch t.Auth {
		case "", "none", "chap", "radius":
		case "default":
			t.Auth = ""
		default:
			return api.Errorf(api.CodeInvalidAuth, t.Name, "auth must be none, chap, radius or default")
		}
		if err := dup("target", c); err != nil {
			return err
		}
	}
	for i := range w.Initiators {
		in := &w.Initiators[i]
		c, ok := api.CanonicalISCSIName(in.Name)
		if !ok {
			return api.Errorf(api.CodeInvalidISCSIName, in.Name, "Invalid iSCSI name")
		}
		in.Name = c
		if err := dup("initiator", c); err != nil {
			return err
		}
	}
	for _, gs := range []struct {
		kind string
		list []api.ConfigGroup
	}{{"host group", w.HostGroups}, {"target group", w.TargetGroups}} {
		owner := map[string]string{}
		for i := range gs.list {
			g := &gs.list[i]
			if !api.ValidGroupName(g.Name) {
				return api.Errorf(api.CodeInvalidGroupName, g.Name, "invalid group name")
			}
			if err := dup(gs.kind, g.Name); err != nil {
				return err
			}
			for j, mem := range g.Members {
				c, ok := api.CanonicalDeviceID(mem)
				if !ok {
					return api.Errorf(api.CodeInvalidDeviceID, mem, "unrecognized device id")
				}
				if o, ok := owner[c]; ok {
					return api.Errorf(api.CodeMemberExists, c, "member of %s %s and %s: a member belongs to one group", gs.kind, o, g.Name)
				}
				owner[c] = g.Name
				g.Members[j] = c
			}
		}
	}
	for i := range w.LUs {
		l := &w.LUs[i]
		g, err := guidKey(l.GUID)
		if err != nil {
			return err
		}
		l.GUID = g
		if l.DataFile, err = cleanAbs(l.DataFile, "data file"); err != nil {
			return err
		}
		if l.MetaFile != "" {
			if l.MetaFile, err = cleanAbs(l.MetaFile, "meta file"); err != nil {
				return err
			}
		}
		if err := dup("LU", g); err != nil {
			return err
		}
	}
	for i := range w.Views {
		v := &w.Views[i]
		g, err := guidKey(v.GUID)
		if err != nil {
			return err
		}
		v.GUID = g
		if v.LUN < 0 || v.LUN > api.MaxLUN {
			return api.Errorf(api.CodeInvalidLUN, g, "Logical unit number must be less than 16384")
		}
		if err := dup("view", fmt.Sprintf("%s host group %q target group %q", g, v.HostGroup, v.TargetGroup)); err != nil {
			return err
		}
	}
	for _, a := range w.ALUA {
		if _, ok := api.CanonicalALUAState(a.State); !ok || a.Tag == 0 {
			return api.Errorf(api.CodeInvalidALUAState, fmt.Sprint(a.Tag), "alua: a tag 1-65535 and a state (active-optimized, active-nonoptimized, standby, unavailable, transitioning)")
		}
		if err := dup("ALUA group", fmt.Sprint(a.Tag)); err != nil {
			return err
		}
	}
	return nil
}
