package mgmt

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/stmf"
)

// running is what apply compares a Config with: the stored state and what
// the open LUs report about themselves (their properties live with their
// data, not in the state).
type running struct {
	st  *store.State
	lus map[string]LUInfo // by GUID string; LUs not open are absent
}

func (m *Manager) runningLocked() running {
	r := running{st: m.state, lus: map[string]LUInfo{}}
	for g, u := range m.open {
		r.lus[g.String()] = u.Info()
	}
	return r
}

// generation names a running configuration: a digest of everything apply
// compares (secrets included, never shown), so any change by any verb,
// LU properties too, gives a new one, and it survives a restart.
func (r running) generation() string {
	st := r.st.Clone()
	st.RelPortIDs = nil
	lus := make([]LUInfo, 0, len(r.lus))
	for _, in := range r.lus {
		lus = append(lus, in)
	}
	slices.SortFunc(lus, func(a, b LUInfo) int { return cmp.Compare(a.GUID.String(), b.GUID.String()) })
	b, _ := json.Marshal(struct {
		St  *store.State
		LUs []LUInfo
	}{st, lus})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// secretRef is the key a secret is exported under: the name of the object
// it belongs to, or "radius" for the RADIUS secret.
const radiusSecretRef = "radius"

// export renders the running configuration as a Config, sorted so that
// the same configuration always gives the same document.
func (r running) export() api.Config {
	st := r.st
	c := api.Config{Version: api.ConfigVersion}
	d := st.ISCSI.Defaults
	c.Defaults = &api.ConfigDefaults{Auth: authName(d.Auth), RadiusServer: d.RadiusServer, ISNS: d.ISNS,
		ISNSServers: slices.Clone(d.ISNSServers)}
	if d.RadiusSecret != "" {
		c.Defaults.RadiusSecretRef = radiusSecretRef
	}
	for _, g := range st.ISCSI.TPGs {
		c.TPGs = append(c.TPGs, api.ConfigTPG{Name: g.Name, Portals: slices.Clone(g.Portals)})
	}
	slices.SortFunc(c.TPGs, func(a, b api.ConfigTPG) int { return cmp.Compare(a.Name, b.Name) })
	for _, t := range st.Targets {
		ct := api.ConfigTarget{Name: t.Name, Alias: t.Alias, Offline: t.Offline, Auth: t.ISCSI.Auth, ChapUser: t.ISCSI.ChapUser}
		if t.Protocol != store.ProtocolISCSI {
			ct.Protocol = t.Protocol
		}
		if t.ISCSI.ChapSecret != "" {
			ct.ChapSecretRef = t.Name
		}
		for _, b := range t.ISCSI.TPGTs {
			ct.TPGs = append(ct.TPGs, api.TPGTag{TPG: b.TPG, Tag: b.Tag})
		}
		slices.SortFunc(ct.TPGs, func(a, b api.TPGTag) int { return cmp.Compare(a.Tag, b.Tag) })
		c.Targets = append(c.Targets, ct)
	}
	slices.SortFunc(c.Targets, func(a, b api.ConfigTarget) int { return cmp.Compare(a.Name, b.Name) })
	for _, in := range st.ISCSI.Initiators {
		ci := api.ConfigInitiator{Name: in.Name, ChapUser: in.ChapUser}
		if in.ChapSecret != "" {
			ci.ChapSecretRef = in.Name
		}
		c.Initiators = append(c.Initiators, ci)
	}
	slices.SortFunc(c.Initiators, func(a, b api.ConfigInitiator) int { return cmp.Compare(a.Name, b.Name) })
	c.HostGroups = exportGroups(st.HostGroups)
	c.TargetGroups = exportGroups(st.TargetGroups)
	for _, l := range st.LUs {
		c.LUs = append(c.LUs, r.exportLU(l))
	}
	slices.SortFunc(c.LUs, func(a, b api.ConfigLU) int { return cmp.Compare(a.GUID, b.GUID) })
	for _, v := range st.Views {
		c.Views = append(c.Views, api.ConfigView{GUID: v.GUID, HostGroup: v.HostGroup, TargetGroup: v.TargetGroup, LUN: v.LUN})
	}
	slices.SortFunc(c.Views, compareViews)
	for _, a := range st.ALUA {
		c.ALUA = append(c.ALUA, api.ConfigALUA{Tag: a.Tag, State: a.State})
	}
	slices.SortFunc(c.ALUA, func(a, b api.ConfigALUA) int { return cmp.Compare(a.Tag, b.Tag) })
	return c
}

func (r running) exportLU(l store.LU) api.ConfigLU {
	cl := api.ConfigLU{GUID: l.GUID, DataFile: l.DataFile, MetaFile: l.MetaFile, Offline: l.Offline,
		QoSIOPS: l.QoSIOPS, QoSMBps: l.QoSMBps}
	in, ok := r.lus[l.GUID]
	if !ok {
		return cl // not open: its properties are unknown
	}
	if in.DataFile != "" {
		cl.DataFile, cl.MetaFile = in.DataFile, in.MetaFile
	}
	cl.Size, cl.BlockSize = in.Size, in.BlockSize
	cl.Alias, cl.MgmtURL = in.Alias, in.MgmtURL
	cl.VID, cl.PID, cl.Serial = in.VID, in.PID, in.Serial
	cl.WCD, cl.WP, cl.Thin, cl.SoftThreshold = in.WCD, in.WP, in.Thin, in.SoftThreshold
	return cl
}

func exportGroups(gs []store.Group) []api.ConfigGroup {
	var out []api.ConfigGroup
	for _, g := range gs {
		ms := slices.Clone(g.Members)
		if ms == nil {
			ms = []string{}
		}
		slices.Sort(ms)
		out = append(out, api.ConfigGroup{Name: g.Name, Members: ms})
	}
	slices.SortFunc(out, func(a, b api.ConfigGroup) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func compareViews(a, b api.ConfigView) int {
	return cmp.Or(cmp.Compare(a.GUID, b.GUID), cmp.Compare(a.LUN, b.LUN),
		cmp.Compare(a.HostGroup, b.HostGroup), cmp.Compare(a.TargetGroup, b.TargetGroup))
}

// authName is an auth method as itadm shows it ("" is none).
func authName(a string) string {
	if a == "" {
		return "none"
	}
	return a
}

// guidKey is the canonical (stored) form of a GUID operand.
func guidKey(s string) (string, error) {
	g, err := parseGUIDArg(s, api.CodeInvalidGUID)
	if err != nil {
		return "", err
	}
	return stmf.GUID(g).String(), nil
}
