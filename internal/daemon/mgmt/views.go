package mgmt

import (
	"context"
	"errors"
	"slices"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

func viewEntry(v store.View) stmf.ViewEntry {
	return stmf.ViewEntry{HostGroup: v.HostGroup, TargetGroup: v.TargetGroup, LUN: scsi.LUN(v.LUN)}
}

func apiView(v store.View) api.View {
	return api.View{GUID: v.GUID, Entry: v.Entry, HostGroup: v.HostGroup, TargetGroup: v.TargetGroup, LUN: v.LUN}
}

// ListViews returns an LU's view entries by entry number (empty when it
// has none). The LU need not exist: views outlive delete-lu -k.
func (m *Manager) ListViews(_ context.Context, req api.GUIDRequest) ([]api.View, error) {
	if !api.IsGUID(req.GUID) {
		return nil, api.Errorf(api.CodeInvalidGUID, req.GUID, "must be 32 hexadecimal digits long")
	}
	g, err := stmf.ParseGUID(req.GUID)
	if err != nil {
		return []api.View{}, nil // not an NAA 6 name: no LU, no views
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := []api.View{}
	for _, v := range viewsOf(m.state, g) {
		out = append(out, apiView(v))
	}
	return out, nil
}

// AddView is add-view. A view conflicts with another of the same LU when
// both host groups and both target groups overlap ("All" overlaps
// everything). Without a LUN, the lowest LUN free in every map the view
// overlaps is used. The entry number is the smallest free for the LU.
// Sessions see the change at once (REPORTED LUNS DATA HAS CHANGED).
func (m *Manager) AddView(_ context.Context, req api.AddViewRequest) (api.View, error) {
	if !api.IsGUID(req.GUID) {
		return api.View{}, api.Errorf(api.CodeInvalidGUID, req.GUID, "must be 32 hexadecimal digits")
	}
	g, err := stmf.ParseGUID(req.GUID)
	if err != nil {
		return api.View{}, api.Errorf(api.CodeInvalidGUID, req.GUID, "not an NAA type 6 identifier")
	}
	if req.LUN != nil && (*req.LUN < 0 || *req.LUN > api.MaxLUN) {
		return api.View{}, api.Errorf(api.CodeInvalidLUN, "", "Logical unit number must be less than 16384")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if req.HostGroup != "" && findGroup(m.state.HostGroups, req.HostGroup) < 0 {
		return api.View{}, api.Errorf(api.CodeInvalidHostGroup, req.HostGroup, "invalid host group")
	}
	if req.TargetGroup != "" && findGroup(m.state.TargetGroups, req.TargetGroup) < 0 {
		return api.View{}, api.Errorf(api.CodeInvalidTgtGroup, req.TargetGroup, "invalid target group")
	}
	ve := stmf.ViewEntry{HostGroup: req.HostGroup, TargetGroup: req.TargetGroup}
	if req.LUN != nil {
		ve.LUN = scsi.LUN(*req.LUN)
	}
	lun, err := m.fw.AddView(g, ve, req.LUN == nil)
	switch {
	case errors.Is(err, stmf.ErrViewConflict):
		return api.View{}, api.Errorf(api.CodeViewConflict, req.GUID, "view entry exists")
	case errors.Is(err, stmf.ErrLUNInUse):
		return api.View{}, api.Errorf(api.CodeLUNInUse, req.GUID, "LUN already in use")
	case errors.Is(err, stmf.ErrInvalidLUN):
		return api.View{}, api.Errorf(api.CodeInvalidLUN, req.GUID, "no free LUN below 16384")
	case errors.Is(err, stmf.ErrGroupNotFound):
		return api.View{}, api.Errorf(api.CodeInvalidHostGroup, req.GUID, "invalid host group")
	case err != nil:
		return api.View{}, api.Errorf(api.CodeInternal, req.GUID, "%v", err)
	}
	ve.LUN = lun
	used := map[int]bool{}
	for _, v := range viewsOf(m.state, g) {
		used[v.Entry] = true
	}
	entry := 0
	for used[entry] {
		entry++
	}
	v := store.View{GUID: g.String(), Entry: entry, HostGroup: req.HostGroup, TargetGroup: req.TargetGroup, LUN: int(lun)}
	next := m.state.Clone()
	next.Views = append(next.Views, v)
	if err := m.commitLocked(next, func() { _ = m.fw.RemoveView(g, ve) }); err != nil {
		return api.View{}, err
	}
	m.log.Info("view added", "guid", g, "entry", entry, "host_group", groupLabel(v.HostGroup), "target_group", groupLabel(v.TargetGroup), "lun", v.LUN)
	return apiView(v), nil
}

// RemoveView is remove-view for one entry.
func (m *Manager) RemoveView(_ context.Context, req api.RemoveViewRequest) (api.Empty, error) {
	g, err := parseGUIDArg(req.GUID, api.CodeViewNotFound)
	if err != nil {
		return api.Empty{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := g.String()
	i := slices.IndexFunc(m.state.Views, func(v store.View) bool { return v.GUID == s && v.Entry == req.Entry })
	if i < 0 {
		return api.Empty{}, api.Errorf(api.CodeViewNotFound, req.GUID, "view entry %d not found", req.Entry)
	}
	v := m.state.Views[i]
	if err := m.fw.RemoveView(g, viewEntry(v)); err != nil {
		return api.Empty{}, api.Errorf(api.CodeInternal, req.GUID, "%v", err)
	}
	next := m.state.Clone()
	next.Views = slices.Delete(next.Views, i, i+1)
	if err := m.commitLocked(next, func() { _, _ = m.fw.AddView(g, viewEntry(v), false) }); err != nil {
		return api.Empty{}, err
	}
	m.log.Info("view removed", "guid", g, "entry", v.Entry, "lun", v.LUN)
	return api.Empty{}, nil
}

func groupLabel(name string) string {
	if name == "" {
		return "All"
	}
	return name
}
