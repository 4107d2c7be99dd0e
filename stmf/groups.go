package stmf

import (
	"errors"
	"fmt"
	"sort"
)

// Group errors, matched with errors.Is by the management API.
var (
	ErrGroupExists   = errors.New("stmf: group already exists")
	ErrGroupNotFound = errors.New("stmf: group not found")
	ErrGroupInUse    = errors.New("stmf: group is in use by a view")
	ErrMemberExists  = errors.New("stmf: already a member of a group")
	ErrNotMember     = errors.New("stmf: not a member of the group")
	ErrInvalidName   = errors.New("stmf: invalid group name")
)

// groupKind selects host or target groups.
type groupKind int

const (
	hostGroups groupKind = iota
	targetGroups
)

func (fw *Framework) groups(k groupKind) map[string]map[string]bool {
	if k == hostGroups {
		return fw.hgs
	}
	return fw.tgs
}

func (fw *Framework) createGroup(k groupKind, name string) error {
	if name == "" || name[0] == '*' || len(name) > 255 {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	g := fw.groups(k)
	if _, ok := g[name]; ok {
		return fmt.Errorf("%w: %s", ErrGroupExists, name)
	}
	g[name] = map[string]bool{}
	return nil
}

func (fw *Framework) deleteGroup(k groupKind, name string) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	g := fw.groups(k)
	if _, ok := g[name]; !ok {
		return fmt.Errorf("%w: %s", ErrGroupNotFound, name)
	}
	for _, entries := range fw.views {
		for _, e := range entries {
			if (k == hostGroups && e.HostGroup == name) || (k == targetGroups && e.TargetGroup == name) {
				return fmt.Errorf("%w: %s", ErrGroupInUse, name)
			}
		}
	}
	delete(g, name)
	return nil
}

func (fw *Framework) addMember(k groupKind, name, member string) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	g := fw.groups(k)
	members, ok := g[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrGroupNotFound, name)
	}
	for other, m := range g {
		if m[member] {
			return fmt.Errorf("%w: %s is in %s", ErrMemberExists, member, other)
		}
	}
	members[member] = true
	fw.remapLocked()
	return nil
}

func (fw *Framework) removeMember(k groupKind, name, member string) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	members, ok := fw.groups(k)[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrGroupNotFound, name)
	}
	if !members[member] {
		return fmt.Errorf("%w: %s", ErrNotMember, member)
	}
	delete(members, member)
	fw.remapLocked()
	return nil
}

func (fw *Framework) listGroups(k groupKind) map[string][]string {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	out := map[string][]string{}
	for name, members := range fw.groups(k) {
		list := make([]string, 0, len(members))
		for m := range members {
			list = append(list, m)
		}
		sort.Strings(list)
		out[name] = list
	}
	return out
}

// CreateHostGroup creates an empty host group. Names are case-sensitive and
// may not start with '*'.
func (fw *Framework) CreateHostGroup(name string) error { return fw.createGroup(hostGroups, name) }

// DeleteHostGroup deletes a host group no view uses.
func (fw *Framework) DeleteHostGroup(name string) error { return fw.deleteGroup(hostGroups, name) }

// AddHostGroupMember adds an initiator name; it may belong to one group only.
func (fw *Framework) AddHostGroupMember(group, member string) error {
	return fw.addMember(hostGroups, group, member)
}

// RemoveHostGroupMember removes an initiator from a host group.
func (fw *Framework) RemoveHostGroupMember(group, member string) error {
	return fw.removeMember(hostGroups, group, member)
}

// HostGroups returns every host group with its sorted members.
func (fw *Framework) HostGroups() map[string][]string { return fw.listGroups(hostGroups) }

// CreateTargetGroup creates an empty target group.
func (fw *Framework) CreateTargetGroup(name string) error { return fw.createGroup(targetGroups, name) }

// DeleteTargetGroup deletes a target group no view uses.
func (fw *Framework) DeleteTargetGroup(name string) error { return fw.deleteGroup(targetGroups, name) }

// AddTargetGroupMember adds a target name; it may belong to one group only.
// (COMSTAR also requires the target to be offline; the caller checks that.)
func (fw *Framework) AddTargetGroupMember(group, member string) error {
	return fw.addMember(targetGroups, group, member)
}

// RemoveTargetGroupMember removes a target from a target group.
func (fw *Framework) RemoveTargetGroupMember(group, member string) error {
	return fw.removeMember(targetGroups, group, member)
}

// TargetGroups returns every target group with its sorted members.
func (fw *Framework) TargetGroups() map[string][]string { return fw.listGroups(targetGroups) }
