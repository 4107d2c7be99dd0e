package mgmt

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
)

// planLUs imports (or, when the file says create and the backing store
// does not exist, creates) the LUs the running configuration lacks, and
// changes the modifiable properties of those it has. It never moves an LU
// to another backing store, shrinks one, or rewrites a create-only
// property.
func (p *planner) planLUs() error {
	for _, w := range p.want.LUs {
		i := slices.IndexFunc(p.cur.st.LUs, func(l store.LU) bool { return l.GUID == w.GUID })
		if i < 0 {
			if err := p.planNewLU(w); err != nil {
				return err
			}
			if w.Offline {
				p.luState(w.GUID, false)
			}
			continue
		}
		have := p.cur.st.LUs[i]
		in, open := p.cur.lus[w.GUID]
		file, meta := have.DataFile, have.MetaFile
		if open && in.DataFile != "" {
			file, meta = in.DataFile, in.MetaFile
		}
		if w.DataFile != file || (w.MetaFile != "" && w.MetaFile != meta) {
			return planErr(w.GUID, "LU is on %s in the running configuration, not %s: apply does not move LUs", file, w.DataFile)
		}
		qprops, qargs := qosChanges(w, have.QoSIOPS, have.QoSMBps)
		if !open && len(qargs) > 0 {
			// The limits are this target's stored policy, applied when the
			// LU opens (a cluster node's zvol LU waiting for its pool).
			guid := w.GUID
			p.add(&p.luSteps, func(ctx context.Context, m *Manager) error {
				return m.applyStoredQoS(guid, qprops)
			}, "stmfadm modify-lu %s (stored: the LU is not open)", joinArgs(qargs, w.GUID))
		}
		if open {
			if err := checkCreateOnly(w, in); err != nil {
				return err
			}
			props, args := luChanges(w, in)
			props.QoSIOPS, props.QoSMBps = qprops.QoSIOPS, qprops.QoSMBps
			args = append(args, qargs...)
			var size uint64
			if w.Size != 0 && w.Size != in.Size {
				if w.Size < in.Size {
					return api.Errorf(api.CodeInvalidSize, w.GUID, "size %d is smaller than the LU's %d: apply does not shrink LUs", w.Size, in.Size)
				}
				size = w.Size
				args = append(args, fmt.Sprintf("-s %d", size))
			}
			if len(args) > 0 {
				guid := w.GUID
				p.add(&p.luSteps, func(ctx context.Context, m *Manager) error {
					return m.applyModifyLU(ctx, guid, size, props)
				}, "stmfadm modify-lu %s", joinArgs(args, w.GUID))
			}
		}
		if w.Offline != have.Offline {
			p.luState(w.GUID, !w.Offline)
		}
	}
	return nil
}

func (p *planner) luState(guid string, online bool) {
	req := api.GUIDRequest{GUID: guid}
	if online {
		p.add(&p.luStates, func(ctx context.Context, m *Manager) error {
			_, err := m.OnlineLU(ctx, req)
			return err
		}, "stmfadm online-lu %s", guid)
		return
	}
	p.add(&p.luStates, func(ctx context.Context, m *Manager) error {
		_, err := m.OfflineLU(ctx, req)
		return err
	}, "stmfadm offline-lu %s", guid)
}

func (p *planner) planNewLU(w api.ConfigLU) error {
	if w.Create && !p.exists(w.DataFile) {
		if w.Size == 0 {
			return api.Errorf(api.CodeInvalidSize, w.GUID, "create: a new backing store needs a size")
		}
		props := api.LUProps{GUID: w.GUID, MetaFile: w.MetaFile}
		args := []string{"-p guid=" + w.GUID}
		if w.MetaFile != "" {
			args = append(args, "-p meta="+w.MetaFile)
		}
		if w.BlockSize != 0 {
			props.BlockSize = &w.BlockSize
			args = append(args, fmt.Sprintf("-p blk=%d", w.BlockSize))
		}
		for _, s := range []struct {
			name, v string
			dst     **string
		}{{"vid", w.VID, &props.VID}, {"pid", w.PID, &props.PID}, {"serial", w.Serial, &props.Serial}} {
			if s.v != "" {
				v := s.v
				*s.dst = &v
				args = append(args, "-p "+s.name+"="+v)
			}
		}
		if w.Thin {
			props.Thin = &w.Thin
			args = append(args, "-p thin=true")
		}
		mod, margs := luChanges(w, LUInfo{})
		props.Alias, props.MgmtURL, props.WCD, props.WP, props.SoftThreshold = mod.Alias, mod.MgmtURL, mod.WCD, mod.WP, mod.SoftThreshold
		args = append(args, margs...)
		q, qargs := qosChanges(w, 0, 0)
		props.QoSIOPS, props.QoSMBps = q.QoSIOPS, q.QoSMBps
		args = append(args, qargs...)
		if err := props.Validate(false); err != nil {
			return propErr(err)
		}
		req := api.CreateLURequest{DataFile: w.DataFile, Size: w.Size, Props: props}
		p.add(&p.luSteps, func(ctx context.Context, m *Manager) error {
			return m.applyCreateLU(ctx, req)
		}, "stmfadm create-lu %s -s %d %s", strings.Join(args, " "), w.Size, w.DataFile)
		return nil
	}
	file := w.DataFile
	if w.MetaFile != "" {
		file = w.MetaFile
	}
	want := w
	p.add(&p.luSteps, func(ctx context.Context, m *Manager) error {
		return m.applyImportLU(ctx, file, want)
	}, "stmfadm import-lu %s", file)
	// What the backing store holds is known once it is open: the import
	// step checks the GUID and create-only properties, this one sets the
	// modifiable properties and size where the imported LU differs.
	_, args := luChanges(w, LUInfo{})
	_, qargs := qosChanges(w, 0, 0)
	if args = append(args, qargs...); len(args) > 0 || w.Size != 0 {
		if w.Size != 0 {
			args = append(args, fmt.Sprintf("-s %d", w.Size))
		}
		p.add(&p.luSteps, func(ctx context.Context, m *Manager) error {
			return m.applyImportedProps(ctx, want)
		}, "stmfadm modify-lu %s (where the imported LU differs)", joinArgs(args, w.GUID))
	}
	return nil
}

// luChanges are the modify-lu properties in which in differs from w.
func luChanges(w api.ConfigLU, in LUInfo) (api.LUProps, []string) {
	var props api.LUProps
	var args []string
	if w.Alias != in.Alias {
		props.Alias = &w.Alias
		args = append(args, "-p alias="+w.Alias)
	}
	if w.MgmtURL != in.MgmtURL {
		props.MgmtURL = &w.MgmtURL
		args = append(args, "-p mgmt-url="+w.MgmtURL)
	}
	if w.WCD != in.WCD {
		props.WCD = &w.WCD
		args = append(args, fmt.Sprintf("-p wcd=%t", w.WCD))
	}
	if w.WP != in.WP {
		props.WP = &w.WP
		args = append(args, fmt.Sprintf("-p wp=%t", w.WP))
	}
	if w.SoftThreshold != in.SoftThreshold {
		props.SoftThreshold = &w.SoftThreshold
		args = append(args, fmt.Sprintf("-p soft-threshold=%d", w.SoftThreshold))
	}
	return props, args
}

// qosChanges are the QoS limits (kept in the daemon's state, not with the
// LU) in which w differs from the LU's current iops and mbps.
func qosChanges(w api.ConfigLU, iops, mbps uint64) (api.LUProps, []string) {
	var props api.LUProps
	var args []string
	if w.QoSIOPS != iops {
		props.QoSIOPS = &w.QoSIOPS
		args = append(args, fmt.Sprintf("-p qos-iops=%d", w.QoSIOPS))
	}
	if w.QoSMBps != mbps {
		props.QoSMBps = &w.QoSMBps
		args = append(args, fmt.Sprintf("-p qos-mbps=%d", w.QoSMBps))
	}
	return props, args
}

// checkCreateOnly refuses a file that gives an existing LU other values of
// properties only create-lu sets.
func checkCreateOnly(w api.ConfigLU, in LUInfo) error {
	bad := func(prop string, want, have any) error {
		return api.Errorf(api.CodePropNotModify, w.GUID, "%s is %v, not %v: only create-lu sets it", prop, have, want)
	}
	switch {
	case w.BlockSize != 0 && w.BlockSize != in.BlockSize:
		return bad("block-size", w.BlockSize, in.BlockSize)
	case w.VID != "" && w.VID != in.VID:
		return bad("vid", w.VID, in.VID)
	case w.PID != "" && w.PID != in.PID:
		return bad("pid", w.PID, in.PID)
	case w.Serial != "" && w.Serial != in.Serial:
		return bad("serial", w.Serial, in.Serial)
	case w.Thin != in.Thin:
		return bad("thin", w.Thin, in.Thin)
	}
	return nil
}

// planViews adds the views the file has and the running configuration
// lacks, moves views whose LUN differs (remove-view, then add-view -n:
// every removal comes before every addition so LUNs can swap) and, with
// prune, removes the others.
func (p *planner) planViews() error {
	st := p.cur.st
	groupOK := func(k api.GroupKind, name string) bool {
		if name == "" || slices.ContainsFunc(wantGroups(p.want, k), func(g api.ConfigGroup) bool { return g.Name == name }) {
			return true
		}
		return !p.prune && findGroup(*groupsOf(st, k), name) >= 0
	}
	same := func(a store.View, b api.ConfigView) bool {
		return a.GUID == b.GUID && a.HostGroup == b.HostGroup && a.TargetGroup == b.TargetGroup
	}
	want := slices.Clone(p.want.Views)
	slices.SortFunc(want, compareViews)
	for _, w := range want {
		if !groupOK(api.HostGroup, w.HostGroup) {
			return api.Errorf(api.CodeInvalidHostGroup, w.HostGroup, "view of %s: invalid host group", w.GUID)
		}
		if !groupOK(api.TargetGroup, w.TargetGroup) {
			return api.Errorf(api.CodeInvalidTgtGroup, w.TargetGroup, "view of %s: invalid target group", w.GUID)
		}
		i := slices.IndexFunc(st.Views, func(v store.View) bool { return same(v, w) })
		if i >= 0 && st.Views[i].LUN == w.LUN {
			continue
		}
		if i >= 0 {
			p.removeView(st.Views[i])
		}
		lun := w.LUN
		req := api.AddViewRequest{GUID: w.GUID, HostGroup: w.HostGroup, TargetGroup: w.TargetGroup, LUN: &lun}
		var args []string
		if w.HostGroup != "" {
			args = append(args, "-h "+w.HostGroup)
		}
		if w.TargetGroup != "" {
			args = append(args, "-t "+w.TargetGroup)
		}
		args = append(args, fmt.Sprintf("-n %d", w.LUN))
		p.add(&p.addViews, func(ctx context.Context, m *Manager) error {
			_, err := m.AddView(ctx, req)
			return err
		}, "stmfadm add-view %s", joinArgs(args, w.GUID))
	}
	final := slices.Clone(want)
	for _, v := range st.Views {
		if slices.ContainsFunc(want, func(w api.ConfigView) bool { return same(v, w) }) {
			continue
		}
		if p.prune {
			p.removeView(v)
		} else {
			final = append(final, api.ConfigView{GUID: v.GUID, HostGroup: v.HostGroup, TargetGroup: v.TargetGroup, LUN: v.LUN})
		}
	}
	return checkViews(final)
}

// checkViews applies add-view's rules to the views there will be, so a
// plan that would fail on them is refused before anything runs: two views
// of an LU must not overlap, and two LUs must not share a LUN in a map
// both reach. Groups overlap when equal or when either is All; distinct
// groups share no member (one group per member).
func checkViews(vs []api.ConfigView) error {
	overlap := func(a, b string) bool { return a == "" || b == "" || a == b }
	for i, a := range vs {
		for _, b := range vs[i+1:] {
			if !overlap(a.HostGroup, b.HostGroup) || !overlap(a.TargetGroup, b.TargetGroup) {
				continue
			}
			if a.GUID == b.GUID {
				return api.Errorf(api.CodeViewConflict, a.GUID, "views for host group %s, target group %s and for host group %s, target group %s overlap",
					groupLabel(a.HostGroup), groupLabel(a.TargetGroup), groupLabel(b.HostGroup), groupLabel(b.TargetGroup))
			}
			if a.LUN == b.LUN {
				return api.Errorf(api.CodeLUNInUse, b.GUID, "LUN %d is %s's in a map both views reach", b.LUN, a.GUID)
			}
		}
	}
	return nil
}

func (p *planner) removeView(v store.View) {
	req := api.RemoveViewRequest{GUID: v.GUID, Entry: v.Entry}
	p.add(&p.removeViews, func(ctx context.Context, m *Manager) error {
		_, err := m.RemoveView(ctx, req)
		return err
	}, "stmfadm remove-view -l %s %d", v.GUID, v.Entry)
}

// planALUA sets the access states the file gives; with prune, groups it
// omits go back to active-optimized.
func (p *planner) planALUA() error {
	have := map[uint16]string{}
	for _, a := range p.cur.st.ALUA {
		have[a.Tag] = a.State
	}
	set := func(tag uint16, state string) {
		req := api.SetALUAStateRequest{Tag: int(tag), State: state}
		p.add(&p.alua, func(ctx context.Context, m *Manager) error {
			return m.applyALUA(ctx, req)
		}, "stmfadm set-alua-state -g %d %s", tag, state)
	}
	wanted := map[uint16]bool{}
	for _, a := range p.want.ALUA {
		s, _ := api.CanonicalALUAState(a.State)
		wanted[a.Tag] = true
		h, ok := have[a.Tag]
		if !ok {
			h = api.ALUAActiveOptimized
		}
		if h != s {
			set(a.Tag, s)
		}
	}
	if p.prune {
		for _, a := range p.cur.st.ALUA {
			if !wanted[a.Tag] {
				set(a.Tag, api.ALUAActiveOptimized)
			}
		}
	}
	return nil
}
