package mgmt

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/stmf"
)

// Targets of every protocol: listing, online/offline, target groups and
// ALUA port groups are the same for all (stmfadm); creating and
// configuring an iSCSI target is itadm's (iscsi_targets.go).

func findTarget(st *store.State, name string) int {
	return slices.IndexFunc(st.Targets, func(t store.Target) bool { return t.Name == name })
}

// canonicalName returns the canonical form of a target or initiator name
// operand (iqn., eui., wwn.), or the operand itself when it is not a valid
// name (so lookups fail cleanly).
func canonicalName(name string) string {
	if c, ok := api.CanonicalDeviceID(name); ok {
		return c
	}
	return name
}

// specLocked is the port provider's view of a stored target.
func (m *Manager) specLocked(st *store.State, t store.Target) TargetSpec {
	spec := TargetSpec{Name: t.Name, Alias: t.Alias}
	if t.Protocol == store.ProtocolISCSI {
		spec.ISCSI = iscsiSpec(st, t)
	}
	return spec
}

// portGroupsLocked returns the ALUA target port groups a target's ports
// are in: an iSCSI target's portal group tags, the group its provider
// places it in (PortGrouper), else the default group.
func (m *Manager) portGroupsLocked(t store.Target) []uint16 {
	if t.Protocol == store.ProtocolISCSI {
		return iscsiPortGroups(t)
	}
	if pg, ok := m.ports[t.Protocol].Provider.(PortGrouper); ok {
		if gs := pg.PortGroups(t.Name); len(gs) > 0 {
			return gs
		}
	}
	return []uint16{stmf.DefaultPortGroup}
}

// targetLocked renders a stored target with its live sessions.
func (m *Manager) targetLocked(t store.Target) api.Target {
	p := m.ports[t.Protocol]
	out := api.Target{
		Name:     t.Name,
		Alias:    t.Alias,
		Online:   !t.Offline,
		Provider: p.ProviderName,
		Protocol: p.ProtocolName,
		TPGs:     []api.TPGTag{},
		Sessions: []api.Session{},
	}
	if out.Protocol == "" {
		out.Protocol = t.Protocol // no provider registered for it
	}
	if t.Protocol == store.ProtocolISCSI {
		setISCSITarget(&out, t)
	}
	aliases := map[string]string{}
	if p.Provider != nil {
		for _, s := range p.Provider.Sessions() {
			if s.Target == t.Name && s.Alias != "" {
				aliases[s.Initiator] = s.Alias
			}
		}
	}
	for _, s := range m.fw.Sessions() {
		if s.Nexus.TargetName == t.Name {
			out.Sessions = append(out.Sessions, api.Session{Initiator: s.Nexus.InitiatorName, Alias: aliases[s.Nexus.InitiatorName], LoggedInSince: s.Created})
		}
	}
	sort.Slice(out.Sessions, func(i, j int) bool {
		a, b := out.Sessions[i], out.Sessions[j]
		if !a.LoggedInSince.Equal(b.LoggedInSince) {
			return a.LoggedInSince.Before(b.LoggedInSince)
		}
		return a.Initiator < b.Initiator
	})
	return out
}

// ListTargets returns the targets of every protocol in creation order with
// their live sessions.
func (m *Manager) ListTargets(context.Context, api.Empty) ([]api.Target, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]api.Target, 0, len(m.state.Targets))
	for _, t := range m.state.Targets {
		out = append(out, m.targetLocked(t))
	}
	return out, nil
}

// serveTargetsLocked hands st's online targets to their providers (Restore).
func (m *Manager) serveTargetsLocked(ctx context.Context, st *store.State) error {
	for _, t := range st.Targets {
		if t.Offline {
			continue
		}
		if _, err := m.portsFor(t.Protocol, t.Name); err != nil {
			m.log.Error("target stays configured but is not served", "target", t.Name, "protocol", t.Protocol, "err", err)
			continue
		}
		if err := m.addTargetLocked(ctx, st, t); err != nil {
			return fmt.Errorf("serving target %s: %w", t.Name, err)
		}
	}
	return nil
}

// AddTarget configures a target of any registered protocol, online, with
// nothing but its name: how a port provider without an administration
// command of its own (FC: one target per HBA port) makes its targets
// known. iSCSI targets are created by itadm (CreateTarget).
func (m *Manager) AddTarget(ctx context.Context, protocol, name string) (api.Target, error) {
	c, ok := api.CanonicalDeviceID(name)
	if !ok {
		return api.Target{}, api.Errorf(api.CodeInvalidDeviceID, name, "unrecognized device id")
	}
	if _, err := m.portsFor(protocol, c); err != nil {
		return api.Target{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if findTarget(m.state, c) >= 0 {
		return api.Target{}, api.Errorf(api.CodeTargetExists, c, "already configured")
	}
	t := store.Target{Name: c, Protocol: protocol}
	next := m.state.Clone()
	next.Targets = append(next.Targets, t)
	if err := m.addTargetLocked(ctx, next, t); err != nil {
		return api.Target{}, err
	}
	if err := m.commitLocked(next, func() { _ = m.removeTargetLocked(ctx, t) }); err != nil {
		return api.Target{}, err
	}
	m.log.Info("target added", "target", c, "protocol", protocol)
	return m.targetLocked(t), nil
}

// setTargetOnline is online-target / offline-target.
func (m *Manager) setTargetOnline(ctx context.Context, name string, online bool) error {
	c, ok := api.CanonicalDeviceID(name)
	if !ok {
		return api.Errorf(api.CodeInvalidDeviceID, name, "unrecognized device id")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findTarget(m.state, c)
	if i < 0 {
		return api.Errorf(api.CodeTargetNotFound, name, "not found")
	}
	t := m.state.Targets[i]
	if t.Offline == !online {
		return nil
	}
	var undo func()
	if online {
		if err := m.addTargetLocked(ctx, m.state, t); err != nil {
			return err
		}
		undo = func() { _ = m.removeTargetLocked(ctx, t) }
	} else {
		if err := m.removeTargetLocked(ctx, t); err != nil {
			return err
		}
		undo = func() { _ = m.addTargetLocked(ctx, m.state, t) }
	}
	next := m.state.Clone()
	next.Targets[i].Offline = !online
	if err := m.commitLocked(next, undo); err != nil {
		return err
	}
	m.log.Info("target state changed", "target", t.Name, "protocol", t.Protocol, "online", online)
	return nil
}

// OnlineTarget is online-target.
func (m *Manager) OnlineTarget(ctx context.Context, req api.NameRequest) (api.Empty, error) {
	return api.Empty{}, m.setTargetOnline(ctx, req.Name, true)
}

// OfflineTarget is offline-target: its sessions end.
func (m *Manager) OfflineTarget(ctx context.Context, req api.NameRequest) (api.Empty, error) {
	return api.Empty{}, m.setTargetOnline(ctx, req.Name, false)
}
