package mgmt

import (
	"context"
	"slices"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
)

func groupCmd(k api.GroupKind) string {
	if k == api.HostGroup {
		return "hg"
	}
	return "tg"
}

func wantGroups(c api.Config, k api.GroupKind) []api.ConfigGroup {
	if k == api.HostGroup {
		return c.HostGroups
	}
	return c.TargetGroups
}

// planGroups creates groups and moves members (a member leaves its old
// group before it joins the new one: one group per member). A target
// whose target group membership changes is taken offline around the
// change, as stmfadm requires, and brought back online after if it is to
// be online.
func (p *planner) planGroups(out *[]step) error {
	touched := map[string]bool{} // targets whose target group changes
	for _, k := range []api.GroupKind{api.HostGroup, api.TargetGroup} {
		cur := *groupsOf(p.cur.st, k)
		curOwner, wantOwner := map[string]string{}, map[string]string{}
		for _, g := range cur {
			for _, mem := range g.Members {
				curOwner[mem] = g.Name
			}
		}
		for _, g := range wantGroups(p.want, k) {
			for _, mem := range g.Members {
				wantOwner[mem] = g.Name
			}
		}
		remove := func(group, mem string) {
			req := api.MemberRequest{Kind: k, Group: group, Member: mem}
			p.add(&p.removeMembers, func(ctx context.Context, m *Manager) error {
				_, err := m.RemoveGroupMember(ctx, req)
				return err
			}, "stmfadm remove-%s-member -g %s %s", groupCmd(k), group, mem)
			if k == api.TargetGroup {
				touched[mem] = true
			}
		}
		for _, g := range wantGroups(p.want, k) {
			if findGroup(cur, g.Name) < 0 {
				req := api.GroupRequest{Kind: k, Name: g.Name}
				p.add(out, func(ctx context.Context, m *Manager) error {
					_, err := m.CreateGroup(ctx, req)
					return err
				}, "stmfadm create-%s %s", groupCmd(k), g.Name)
			}
			for _, mem := range g.Members {
				have := curOwner[mem]
				if have == g.Name {
					continue
				}
				if have != "" {
					remove(have, mem)
				}
				req := api.MemberRequest{Kind: k, Group: g.Name, Member: mem}
				p.add(&p.addMembers, func(ctx context.Context, m *Manager) error {
					_, err := m.AddGroupMember(ctx, req)
					return err
				}, "stmfadm add-%s-member -g %s %s", groupCmd(k), g.Name, mem)
				if k == api.TargetGroup {
					touched[mem] = true
				}
			}
		}
		if p.prune {
			for _, g := range cur {
				for _, mem := range g.Members {
					if _, ok := wantOwner[mem]; !ok {
						remove(g.Name, mem)
					}
				}
			}
		}
	}
	p.planTargetStates(touched)
	return nil
}

// planTargetStates takes targets offline and online: around their target
// group changes, and as the file says.
func (p *planner) planTargetStates(touched map[string]bool) {
	names := map[string]bool{}
	for _, t := range p.cur.st.Targets {
		names[t.Name] = true
	}
	for _, t := range p.want.Targets {
		names[t.Name] = true
	}
	for n := range touched {
		names[n] = true
	}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for k := range names {
			if !yield(k) {
				return
			}
		}
	}) {
		i := findTarget(p.cur.st, n)
		wi := slices.IndexFunc(p.want.Targets, func(t api.ConfigTarget) bool { return t.Name == n })
		if i < 0 && wi < 0 {
			continue // a group member that is not (yet) a target
		}
		online := i < 0 || !p.cur.st.Targets[i].Offline // create-target brings it online
		want := online
		switch {
		case wi >= 0:
			want = !p.want.Targets[wi].Offline
		case p.prune && p.cur.st.Targets[i].Protocol == store.ProtocolISCSI:
			if online && touched[n] {
				p.add(&p.offline, func(ctx context.Context, m *Manager) error {
					_, err := m.OfflineTarget(ctx, api.NameRequest{Name: n})
					return err
				}, "stmfadm offline-target %s", n)
			}
			continue // deleted later (delete-target -f)
		}
		req := api.NameRequest{Name: n}
		if online && (touched[n] || !want) {
			p.add(&p.offline, func(ctx context.Context, m *Manager) error {
				_, err := m.OfflineTarget(ctx, req)
				return err
			}, "stmfadm offline-target %s", n)
			online = false
		}
		if !online && want {
			p.add(&p.online, func(ctx context.Context, m *Manager) error {
				_, err := m.OnlineTarget(ctx, req)
				return err
			}, "stmfadm online-target %s", n)
		}
	}
}

// planPrune deletes what the file omits (with --prune only): LUs (their
// backing stores are kept, as delete-lu does), groups, targets,
// initiators, portal groups. Views and members went earlier.
func (p *planner) planPrune() {
	if !p.prune {
		return
	}
	st := p.cur.st
	for _, l := range st.LUs {
		if slices.ContainsFunc(p.want.LUs, func(w api.ConfigLU) bool { return w.GUID == l.GUID }) {
			continue
		}
		req := api.DeleteLURequest{GUID: l.GUID, KeepViews: true}
		rec := l
		p.add(&p.deletes, func(ctx context.Context, m *Manager) error {
			return m.applyDeleteLU(ctx, req, rec)
		}, "stmfadm delete-lu -k %s", l.GUID)
	}
	for _, k := range []api.GroupKind{api.HostGroup, api.TargetGroup} {
		for _, g := range *groupsOf(st, k) {
			if slices.ContainsFunc(wantGroups(p.want, k), func(w api.ConfigGroup) bool { return w.Name == g.Name }) {
				continue
			}
			req := api.GroupRequest{Kind: k, Name: g.Name}
			p.add(&p.deletes, func(ctx context.Context, m *Manager) error {
				_, err := m.DeleteGroup(ctx, req)
				return err
			}, "stmfadm delete-%s %s", groupCmd(k), g.Name)
		}
	}
	for _, t := range st.Targets {
		if t.Protocol != store.ProtocolISCSI || slices.ContainsFunc(p.want.Targets, func(w api.ConfigTarget) bool { return w.Name == t.Name }) {
			continue // targets of other protocols belong to their hardware
		}
		req := api.NameRequest{Name: t.Name, Force: true}
		p.add(&p.deletes, func(ctx context.Context, m *Manager) error {
			_, err := m.DeleteTarget(ctx, req)
			return err
		}, "itadm delete-target -f %s", t.Name)
	}
	for _, in := range st.ISCSI.Initiators {
		if slices.ContainsFunc(p.want.Initiators, func(w api.ConfigInitiator) bool { return w.Name == in.Name }) {
			continue
		}
		req := api.NameRequest{Name: in.Name}
		p.add(&p.deletes, func(ctx context.Context, m *Manager) error {
			_, err := m.DeleteInitiator(ctx, req)
			return err
		}, "itadm delete-initiator %s", in.Name)
	}
	for _, g := range st.ISCSI.TPGs {
		if slices.ContainsFunc(p.want.TPGs, func(w api.ConfigTPG) bool { return w.Name == g.Name }) {
			continue
		}
		req := api.NameRequest{Name: g.Name}
		p.add(&p.deletes, func(ctx context.Context, m *Manager) error {
			_, err := m.DeleteTPG(ctx, req)
			return err
		}, "itadm delete-tpg %s", g.Name)
	}
}
