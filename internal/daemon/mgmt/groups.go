package mgmt

import (
	"context"
	"errors"
	"slices"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/stmf"
)

// fwGroups is the stmf side of one group kind.
type fwGroups struct {
	create, delete func(name string) error
	add, remove    func(group, member string) error
}

func groupOps(fw *stmf.Framework, k api.GroupKind) fwGroups {
	if k == api.HostGroup {
		return fwGroups{fw.CreateHostGroup, fw.DeleteHostGroup, fw.AddHostGroupMember, fw.RemoveHostGroupMember}
	}
	return fwGroups{fw.CreateTargetGroup, fw.DeleteTargetGroup, fw.AddTargetGroupMember, fw.RemoveTargetGroupMember}
}

func groupsOf(st *store.State, k api.GroupKind) *[]store.Group {
	if k == api.HostGroup {
		return &st.HostGroups
	}
	return &st.TargetGroups
}

func findGroup(gs []store.Group, name string) int {
	return slices.IndexFunc(gs, func(g store.Group) bool { return g.Name == name })
}

func checkKind(k api.GroupKind) error {
	if k != api.HostGroup && k != api.TargetGroup {
		return api.Errorf(api.CodeInvalidArgument, string(k), "group kind must be %q or %q", api.HostGroup, api.TargetGroup)
	}
	return nil
}

// ListGroups returns the groups of a kind in creation order.
func (m *Manager) ListGroups(_ context.Context, req api.GroupRequest) ([]api.Group, error) {
	if err := checkKind(req.Kind); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := []api.Group{}
	for _, g := range *groupsOf(m.state, req.Kind) {
		out = append(out, api.Group{Name: g.Name, Members: append([]string{}, g.Members...)})
	}
	return out, nil
}

// CreateGroup is create-hg / create-tg. Names are case-sensitive, at most
// 255 bytes, and may not start with '*'.
func (m *Manager) CreateGroup(_ context.Context, req api.GroupRequest) (api.Empty, error) {
	if err := checkKind(req.Kind); err != nil {
		return api.Empty{}, err
	}
	if !api.ValidGroupName(req.Name) {
		return api.Empty{}, api.Errorf(api.CodeInvalidGroupName, req.Name, "invalid group name")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if findGroup(*groupsOf(m.state, req.Kind), req.Name) >= 0 {
		return api.Empty{}, api.Errorf(api.CodeGroupExists, req.Name, "already exists")
	}
	ops := groupOps(m.fw, req.Kind)
	if err := ops.create(req.Name); err != nil {
		return api.Empty{}, api.Errorf(api.CodeInternal, req.Name, "%v", err)
	}
	next := m.state.Clone()
	gs := groupsOf(next, req.Kind)
	*gs = append(*gs, store.Group{Name: req.Name, Members: []string{}})
	if err := m.commitLocked(next, func() { _ = ops.delete(req.Name) }); err != nil {
		return api.Empty{}, err
	}
	m.log.Info(string(req.Kind)+" group created", "name", req.Name)
	return api.Empty{}, nil
}

// DeleteGroup is delete-hg / delete-tg, refused while a view uses the group.
func (m *Manager) DeleteGroup(_ context.Context, req api.GroupRequest) (api.Empty, error) {
	if err := checkKind(req.Kind); err != nil {
		return api.Empty{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findGroup(*groupsOf(m.state, req.Kind), req.Name)
	if i < 0 {
		return api.Empty{}, api.Errorf(api.CodeGroupNotFound, req.Name, "not found")
	}
	old := (*groupsOf(m.state, req.Kind))[i]
	ops := groupOps(m.fw, req.Kind)
	if err := ops.delete(req.Name); errors.Is(err, stmf.ErrGroupInUse) {
		return api.Empty{}, api.Errorf(api.CodeGroupInUse, req.Name, "group is in use by existing view entry")
	} else if err != nil {
		return api.Empty{}, api.Errorf(api.CodeInternal, req.Name, "%v", err)
	}
	next := m.state.Clone()
	gs := groupsOf(next, req.Kind)
	*gs = slices.Delete(*gs, i, i+1)
	if err := m.commitLocked(next, func() {
		_ = ops.create(old.Name)
		for _, mem := range old.Members {
			_ = ops.add(old.Name, mem)
		}
	}); err != nil {
		return api.Empty{}, err
	}
	m.log.Info(string(req.Kind)+" group deleted", "name", req.Name)
	return api.Empty{}, nil
}

// memberLocked validates a member request and returns the group's index
// and the member's canonical name.
func (m *Manager) memberLocked(req api.MemberRequest) (int, string, error) {
	if err := checkKind(req.Kind); err != nil {
		return -1, "", err
	}
	member, ok := api.CanonicalDeviceID(req.Member)
	if !ok {
		return -1, "", api.Errorf(api.CodeInvalidDeviceID, req.Member, "unrecognized device id")
	}
	i := findGroup(*groupsOf(m.state, req.Kind), req.Group)
	if i < 0 {
		return -1, "", api.Errorf(api.CodeGroupNotFound, req.Group, "not found")
	}
	if req.Kind == api.TargetGroup {
		if t := findTarget(m.state, member); t >= 0 && !m.state.Targets[t].Offline {
			return -1, "", api.Errorf(api.CodeTargetOnline, member, "STMF target must be offline")
		}
	}
	return i, member, nil
}

// AddGroupMember is add-hg-member / add-tg-member: a member belongs to one
// group of its kind at most; a target must be offline to join. Sessions of
// the initiator see their new LUN map at once.
func (m *Manager) AddGroupMember(_ context.Context, req api.MemberRequest) (api.Empty, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, member, err := m.memberLocked(req)
	if err != nil {
		return api.Empty{}, err
	}
	ops := groupOps(m.fw, req.Kind)
	if err := ops.add(req.Group, member); errors.Is(err, stmf.ErrMemberExists) {
		return api.Empty{}, api.Errorf(api.CodeMemberExists, req.Member, "already exists")
	} else if err != nil {
		return api.Empty{}, api.Errorf(api.CodeInternal, req.Member, "%v", err)
	}
	next := m.state.Clone()
	g := &(*groupsOf(next, req.Kind))[i]
	g.Members = append(g.Members, member)
	if err := m.commitLocked(next, func() { _ = ops.remove(req.Group, member) }); err != nil {
		return api.Empty{}, err
	}
	m.log.Info(string(req.Kind)+" group member added", "group", req.Group, "member", member)
	return api.Empty{}, nil
}

// RemoveGroupMember is remove-hg-member / remove-tg-member.
func (m *Manager) RemoveGroupMember(_ context.Context, req api.MemberRequest) (api.Empty, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, member, err := m.memberLocked(req)
	if err != nil {
		return api.Empty{}, err
	}
	g := (*groupsOf(m.state, req.Kind))[i]
	j := slices.Index(g.Members, member)
	if j < 0 {
		return api.Empty{}, api.Errorf(api.CodeMemberNotFound, req.Member, "not found")
	}
	ops := groupOps(m.fw, req.Kind)
	if err := ops.remove(req.Group, member); err != nil {
		return api.Empty{}, api.Errorf(api.CodeInternal, req.Member, "%v", err)
	}
	next := m.state.Clone()
	ng := &(*groupsOf(next, req.Kind))[i]
	ng.Members = slices.Delete(ng.Members, j, j+1)
	if err := m.commitLocked(next, func() { _ = ops.add(req.Group, member) }); err != nil {
		return api.Empty{}, err
	}
	m.log.Info(string(req.Kind)+" group member removed", "group", req.Group, "member", member)
	return api.Empty{}, nil
}
