package mgmt

import (
	"context"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
)

// PortProvider serves the targets of one protocol (the iSCSI target
// server; later the FC one). The manager calls it with mu held, one call
// at a time.
type PortProvider interface {
	// AddTarget brings a target online: its ports join the framework and
	// initiators can log in.
	AddTarget(ctx context.Context, spec TargetSpec) error
	// UpdateTarget applies a changed spec (same name) to an online target,
	// keeping the sessions that stay valid.
	UpdateTarget(ctx context.Context, spec TargetSpec) error
	// RemoveTarget takes a target offline and ends its sessions; a target
	// the provider does not serve is not an error.
	RemoveTarget(ctx context.Context, name string) error
	// Sessions reports what the provider knows of its sessions beyond
	// stmf (list-target -v shows the initiator's alias from it).
	Sessions() []SessionInfo
}

// PortGrouper is implemented by a provider whose targets take their ALUA
// target port group from the provider's own configuration rather than the
// stored target (FC: the adapter's port-group setting), so listings put
// them in the group they really serve.
type PortGrouper interface {
	// PortGroups returns the groups of the named target's ports; empty
	// for the default group.
	PortGroups(target string) []uint16
}

// Ports is one protocol's entry in the manager's registry.
type Ports struct {
	Provider PortProvider
	// ProviderName and ProtocolName are what stmfadm list-target -v shows
	// as "Provider Name" and "Protocol": iscsit and iSCSI, or for FC the
	// HBA driver (qlt) and Fibre Channel.
	ProviderName, ProtocolName string
}

// TargetSpec is what a port provider serves for one target. The neutral
// part is the name and alias; each protocol's own settings have a section.
type TargetSpec struct {
	Name  string
	Alias string
	// ISCSI is the iSCSI part (iscsi_targets.go); zero for other protocols.
	ISCSI ISCSITargetSpec
}

// SessionInfo is what a port provider knows about a session beyond stmf.
type SessionInfo struct {
	Target, Initiator, Alias string
}

// portsFor returns the provider registered for a protocol, or the error
// that refuses an operation on a target of an unknown protocol.
func (m *Manager) portsFor(protocol, target string) (Ports, error) {
	p, ok := m.ports[protocol]
	if !ok || p.Provider == nil {
		return Ports{}, api.Errorf(api.CodeNotSupported, target, "no port provider is registered for protocol %q", protocol)
	}
	return p, nil
}

// addTargetLocked serves a target through its protocol's provider.
func (m *Manager) addTargetLocked(ctx context.Context, st *store.State, t store.Target) error {
	p, err := m.portsFor(t.Protocol, t.Name)
	if err != nil {
		return err
	}
	if err := p.Provider.AddTarget(ctx, m.specLocked(st, t)); err != nil {
		return api.Errorf(api.CodeInternal, t.Name, "cannot bring the target online: %v", err)
	}
	return nil
}

// removeTargetLocked stops serving a target.
func (m *Manager) removeTargetLocked(ctx context.Context, t store.Target) error {
	p, err := m.portsFor(t.Protocol, t.Name)
	if err != nil {
		return err
	}
	if err := p.Provider.RemoveTarget(ctx, t.Name); err != nil {
		return api.Errorf(api.CodeBusy, t.Name, "cannot take the target offline: %v", err)
	}
	return nil
}

// updateTargetLocked pushes t's configuration in st to the served target
// that was old: dropped and re-added when renamed, else updated in place.
func (m *Manager) updateTargetLocked(ctx context.Context, old store.Target, st *store.State, t store.Target) error {
	if old.Name != t.Name {
		if err := m.removeTargetLocked(ctx, old); err != nil {
			return err
		}
		return m.addTargetLocked(ctx, st, t)
	}
	p, err := m.portsFor(t.Protocol, t.Name)
	if err != nil {
		return err
	}
	if err := p.Provider.UpdateTarget(ctx, m.specLocked(st, t)); err != nil {
		return api.Errorf(api.CodeInternal, t.Name, "cannot update the target: %v", err)
	}
	return nil
}
