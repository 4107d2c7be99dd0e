package mgmt

import (
	"context"
	"slices"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
)

// iSCSI target portal groups (itadm create-tpg, list-tpg, delete-tpg).

func findTPG(st *store.State, name string) int {
	return slices.IndexFunc(st.ISCSI.TPGs, func(t store.TPG) bool { return t.Name == name })
}

// ListTPGs returns the target portal groups in creation order.
func (m *Manager) ListTPGs(context.Context, api.Empty) ([]api.TPG, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]api.TPG, 0, len(m.state.ISCSI.TPGs))
	for _, t := range m.state.ISCSI.TPGs {
		out = append(out, api.TPG{Name: t.Name, Portals: append([]string{}, t.Portals...)})
	}
	return out, nil
}

// CreateTPG is itadm create-tpg. A portal belongs to one portal group.
func (m *Manager) CreateTPG(_ context.Context, req api.TPG) (api.Empty, error) {
	if req.Name == "" || len(req.Name) > api.MaxTPGNameLen {
		return api.Empty{}, api.Errorf(api.CodeInvalidTPGName, req.Name, "Target Portal Group name must be no longer than %d characters.", api.MaxTPGNameLen)
	}
	if len(req.Portals) == 0 {
		return api.Empty{}, api.Errorf(api.CodeInvalidArgument, req.Name, "no portal addresses specified")
	}
	var portals []string
	for _, p := range req.Portals {
		c, err := api.CanonicalPortal(p)
		if err != nil {
			return api.Empty{}, api.Errorf(api.CodeInvalidPortal, p, "%v", err)
		}
		if !slices.Contains(portals, c) {
			portals = append(portals, c)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if findTPG(m.state, req.Name) >= 0 {
		return api.Empty{}, api.Errorf(api.CodeTPGExists, req.Name, "already exists")
	}
	for _, g := range m.state.ISCSI.TPGs {
		for _, p := range portals {
			if slices.Contains(g.Portals, p) {
				return api.Empty{}, api.Errorf(api.CodePortalInUse, p, "already in use")
			}
		}
	}
	next := m.state.Clone()
	next.ISCSI.TPGs = append(next.ISCSI.TPGs, store.TPG{Name: req.Name, Portals: portals})
	if err := m.commitLocked(next, nil); err != nil {
		return api.Empty{}, err
	}
	m.log.Info("target portal group created", "tpg", req.Name, "portals", portals)
	return api.Empty{}, nil
}

// DeleteTPG is itadm delete-tpg, refused while a target uses the group
// unless forced (which unbinds it from those targets).
func (m *Manager) DeleteTPG(ctx context.Context, req api.NameRequest) (api.Empty, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findTPG(m.state, req.Name)
	if i < 0 {
		return api.Empty{}, api.Errorf(api.CodeTPGNotFound, req.Name, "does not exist")
	}
	next := m.state.Clone()
	next.ISCSI.TPGs = slices.Delete(next.ISCSI.TPGs, i, i+1)
	var changed []string
	for ti := range next.Targets {
		t := &next.Targets[ti]
		n := len(t.ISCSI.TPGTs)
		t.ISCSI.TPGTs = slices.DeleteFunc(t.ISCSI.TPGTs, func(b store.TPGT) bool { return b.TPG == req.Name })
		if len(t.ISCSI.TPGTs) != n {
			changed = append(changed, t.Name)
		}
	}
	if len(changed) > 0 && !req.Force {
		return api.Empty{}, api.Errorf(api.CodeTPGInUse, req.Name, "associated with one or more targets")
	}
	undo, err := m.refreshTargetsLocked(ctx, next, changed)
	if err != nil {
		return api.Empty{}, err
	}
	if err := m.commitLocked(next, undo); err != nil {
		return api.Empty{}, err
	}
	m.log.Info("target portal group deleted", "tpg", req.Name, "targets_unbound", len(changed))
	return api.Empty{}, nil
}

// refreshTargetsLocked pushes next's configuration to the online targets
// whose names are listed (their effective settings changed) and returns
// the undo that pushes the current state's back.
func (m *Manager) refreshTargetsLocked(ctx context.Context, next *store.State, names []string) (func(), error) {
	var done []string
	undo := func() {
		for _, n := range done {
			if i := findTarget(m.state, n); i >= 0 {
				t := m.state.Targets[i]
				_ = m.updateTargetLocked(ctx, t, m.state, t)
			}
		}
	}
	for _, n := range names {
		i := findTarget(next, n)
		if i < 0 || next.Targets[i].Offline {
			continue
		}
		if err := m.updateTargetLocked(ctx, next.Targets[i], next, next.Targets[i]); err != nil {
			undo()
			return nil, err
		}
		done = append(done, n)
	}
	return undo, nil
}
