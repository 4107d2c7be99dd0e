package mgmt

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
)

// Target naming and protocol constants.
const (
	// GeneratedIQNPrefix starts the names create-target generates:
	// <prefix><uuid>, as COMSTAR's iqn.1986-03.com.sun:02:<uuid>.
	GeneratedIQNPrefix = "iqn.2026-11.org.costar:02:"
	PortProviderName   = "iscsit"
	Protocol           = "iSCSI"
	// DefaultTPGT is the portal group tag of the default portal group.
	DefaultTPGT = 1
	maxTag      = 0xffff
)

func findTarget(st *store.State, name string) int {
	return slices.IndexFunc(st.Targets, func(t store.Target) bool { return t.Name == name })
}

func findTPG(st *store.State, name string) int {
	return slices.IndexFunc(st.TPGs, func(t store.TPG) bool { return t.Name == name })
}

// canonicalTarget returns the canonical form of a target name operand, or
// the operand itself when it is not a valid name (so lookups fail cleanly).
func canonicalTarget(name string) string {
	if c, ok := api.CanonicalISCSIName(name); ok {
		return c
	}
	return name
}

// specLocked is the port provider's view of a stored target.
func (m *Manager) specLocked(st *store.State, t store.Target) TargetSpec {
	spec := TargetSpec{Name: t.Name, Alias: t.Alias, Auth: t.Auth, ChapUser: t.ChapUser, ChapSecret: t.ChapSecret}
	if spec.Auth == "" {
		spec.Auth = st.Defaults.Auth
	}
	if spec.Auth == "" {
		spec.Auth = "none"
	}
	for _, b := range t.TPGTs {
		pg := PortalGroup{Name: b.TPG, Tag: b.Tag}
		if i := findTPG(st, b.TPG); i >= 0 {
			pg.Portals = slices.Clone(st.TPGs[i].Portals)
		}
		spec.PortalGroups = append(spec.PortalGroups, pg)
	}
	return spec
}

func (m *Manager) targetLocked(t store.Target) api.Target {
	out := api.Target{
		Name:          t.Name,
		Alias:         t.Alias,
		Online:        !t.Offline,
		Provider:      PortProviderName,
		Protocol:      Protocol,
		Auth:          t.Auth,
		ChapUser:      t.ChapUser,
		ChapSecretSet: t.ChapSecret != "",
		TPGs:          []api.TPGTag{},
		Sessions:      []api.Session{},
	}
	for _, b := range t.TPGTs {
		out.TPGs = append(out.TPGs, api.TPGTag{TPG: b.TPG, Tag: b.Tag})
	}
	aliases := map[string]string{}
	if sr, ok := m.ports.(SessionReporter); ok {
		for _, s := range sr.Sessions() {
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

// ListTargets returns the iSCSI targets in creation order with their live
// sessions.
func (m *Manager) ListTargets(context.Context, api.Empty) ([]api.Target, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]api.Target, 0, len(m.state.Targets))
	for _, t := range m.state.Targets {
		out = append(out, m.targetLocked(t))
	}
	return out, nil
}

// addTargetLocked starts serving a target, if a port provider is attached.
func (m *Manager) addTargetLocked(ctx context.Context, spec TargetSpec) error {
	if m.ports == nil {
		return nil
	}
	if err := m.ports.AddTarget(ctx, spec); err != nil {
		return api.Errorf(api.CodeInternal, spec.Name, "cannot bring the target online: %v", err)
	}
	return nil
}

func (m *Manager) removeTargetLocked(ctx context.Context, name string) error {
	if m.ports == nil {
		return nil
	}
	if err := m.ports.RemoveTarget(ctx, name); err != nil {
		return api.Errorf(api.CodeBusy, name, "cannot take the target offline: %v", err)
	}
	return nil
}

// updateTargetLocked pushes a changed configuration to a served target:
// drop and re-add when renamed, else update it in place when the provider
// can (otherwise the change applies when the target next comes online).
func (m *Manager) updateTargetLocked(ctx context.Context, oldName string, spec TargetSpec) error {
	if m.ports == nil {
		return nil
	}
	if oldName != spec.Name {
		if err := m.removeTargetLocked(ctx, oldName); err != nil {
			return err
		}
		return m.addTargetLocked(ctx, spec)
	}
	if u, ok := m.ports.(TargetUpdater); ok {
		if err := u.UpdateTarget(ctx, spec); err != nil {
			return api.Errorf(api.CodeInternal, spec.Name, "cannot update the target: %v", err)
		}
		return nil
	}
	m.log.Warn("the port provider cannot update a served target; the change applies when it next comes online", "target", spec.Name)
	return nil
}

// setTargetOnline is online-target / offline-target.
func (m *Manager) setTargetOnline(ctx context.Context, name string, online bool) error {
	if _, ok := api.CanonicalDeviceID(name); !ok {
		return api.Errorf(api.CodeInvalidDeviceID, name, "unrecognized device id")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findTarget(m.state, canonicalTarget(name))
	if i < 0 {
		return api.Errorf(api.CodeTargetNotFound, name, "not found")
	}
	t := m.state.Targets[i]
	if t.Offline == !online {
		return nil
	}
	var undo func()
	if online {
		if err := m.addTargetLocked(ctx, m.specLocked(m.state, t)); err != nil {
			return err
		}
		undo = func() { _ = m.removeTargetLocked(ctx, t.Name) }
	} else {
		if err := m.removeTargetLocked(ctx, t.Name); err != nil {
			return err
		}
		undo = func() { _ = m.addTargetLocked(ctx, m.specLocked(m.state, t)) }
	}
	next := m.state.Clone()
	next.Targets[i].Offline = !online
	if err := m.commitLocked(next, undo); err != nil {
		return err
	}
	m.log.Info("target state changed", "target", t.Name, "online", online)
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

// generateIQN returns a new random target name.
func generateIQN() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", err
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%s%x-%x-%x-%x-%x", GeneratedIQNPrefix, u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]), nil
}

// tagFor picks the portal group tag for binding tpg to a target that
// already uses the tags in used, as libiscsit does: a numeric TPG name
// 2..65534 is its own tag when free; otherwise one above the highest tag
// in use, or the lowest free one once 65535 is reached.
func tagFor(tpg string, used []store.TPGT) (uint16, error) {
	inUse := map[uint16]bool{}
	highest := uint16(DefaultTPGT)
	for _, b := range used {
		inUse[b.Tag] = true
		highest = max(highest, b.Tag)
	}
	if n, err := strconv.ParseUint(tpg, 10, 16); err == nil && n > DefaultTPGT && n < maxTag && !inUse[uint16(n)] {
		return uint16(n), nil
	}
	if highest < maxTag {
		return highest + 1, nil
	}
	for t := uint16(DefaultTPGT + 1); t < maxTag; t++ {
		if !inUse[t] {
			return t, nil
		}
	}
	return 0, api.Errorf(api.CodeInvalidArgument, tpg, "no portal group tag available")
}

// bindTPGs turns a -t list into the target's bindings: existing bindings
// named again keep their tags, others are dropped, new ones get tags.
// "default" (first) means the default portal group only.
func bindTPGs(st *store.State, have []store.TPGT, names []string) ([]store.TPGT, error) {
	if len(names) == 0 || names[0] == "default" {
		return nil, nil
	}
	for _, n := range names {
		if findTPG(st, n) < 0 {
			return nil, api.Errorf(api.CodeTPGNotFound, n, "tag not defined")
		}
	}
	var out []store.TPGT
	for _, b := range have {
		if slices.Contains(names, b.TPG) {
			out = append(out, b)
		}
	}
	for _, n := range names {
		if slices.ContainsFunc(out, func(b store.TPGT) bool { return b.TPG == n }) {
			continue
		}
		tag, err := tagFor(n, out)
		if err != nil {
			return nil, err
		}
		out = append(out, store.TPGT{TPG: n, Tag: tag})
	}
	return out, nil
}

// applyTargetProps applies the optional settings of a create/modify request.
func applyTargetProps(t *store.Target, req api.TargetRequest) error {
	if req.Alias != nil {
		if len(*req.Alias) > api.MaxAliasLen {
			return api.Errorf(api.CodeInvalidArgument, "alias", "longer than %d characters", api.MaxAliasLen)
		}
		t.Alias = *req.Alias
		if t.Alias == "none" {
			t.Alias = ""
		}
	}
	if req.Auth != nil {
		switch *req.Auth {
		case "none", "chap", "radius":
			t.Auth = *req.Auth
		case "default":
			t.Auth = ""
		default:
			return api.Errorf(api.CodeInvalidAuth, *req.Auth, "must be none, chap, radius or default")
		}
	}
	return applyCHAP(&t.ChapUser, &t.ChapSecret, req.ChapUser, req.ChapSecret, "targetchapsecret")
}

// applyCHAP sets CHAP credentials from a request: user "none" unsets the
// user name; a secret must have 12..255 characters.
func applyCHAP(user, secret *string, newUser, newSecret *string, secretProp string) error {
	if newSecret != nil && !api.ValidSecret(*newSecret) {
		return api.Errorf(api.CodeInvalidSecret, secretProp, "Secret must be between 12 and 255 characters")
	}
	if newUser != nil {
		*user = *newUser
		if *user == "none" {
			*user = ""
		}
	}
	if newSecret != nil {
		*secret = *newSecret
	}
	return nil
}

// CreateTarget is itadm create-target.
func (m *Manager) CreateTarget(ctx context.Context, req api.TargetRequest) (api.Target, error) {
	name := req.Name
	if name == "" {
		var err error
		if name, err = generateIQN(); err != nil {
			return api.Target{}, api.Errorf(api.CodeInternal, "", "generating a target name: %v", err)
		}
	} else {
		if !api.HasISCSIPrefix(name) {
			return api.Target{}, api.Errorf(api.CodeInvalidName, name, "Invalid name")
		}
		c, ok := api.CanonicalISCSIName(name)
		if !ok {
			return api.Target{}, api.Errorf(api.CodeInvalidISCSIName, name, "Invalid iSCSI name")
		}
		name = c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if findTarget(m.state, name) >= 0 {
		return api.Target{}, api.Errorf(api.CodeTargetExists, name, "already configured")
	}
	t := store.Target{Name: name}
	if req.TPGs != nil {
		b, err := bindTPGs(m.state, nil, *req.TPGs)
		if err != nil {
			return api.Target{}, err
		}
		t.TPGTs = b
	}
	if err := applyTargetProps(&t, req); err != nil {
		return api.Target{}, err
	}
	next := m.state.Clone()
	next.Targets = append(next.Targets, t)
	if err := m.addTargetLocked(ctx, m.specLocked(next, t)); err != nil {
		return api.Target{}, err
	}
	if err := m.commitLocked(next, func() { _ = m.removeTargetLocked(ctx, name) }); err != nil {
		return api.Target{}, err
	}
	m.log.Info("target created", "target", name)
	return m.targetLocked(t), nil
}

// ModifyTarget is itadm modify-target.
func (m *Manager) ModifyTarget(ctx context.Context, req api.TargetRequest) (api.Target, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findTarget(m.state, canonicalTarget(req.Name))
	if i < 0 {
		return api.Target{}, api.Errorf(api.CodeTargetNotFound, req.Name, "not found")
	}
	old := m.state.Targets[i]
	t := old
	t.TPGTs = slices.Clone(old.TPGTs)
	if req.NewName != "" {
		c, ok := api.CanonicalISCSIName(req.NewName)
		if !ok {
			return api.Target{}, api.Errorf(api.CodeInvalidISCSIName, req.NewName, "Invalid iSCSI name")
		}
		if findTarget(m.state, c) >= 0 {
			return api.Target{}, api.Errorf(api.CodeTargetExists, req.NewName, "already exists")
		}
		t.Name = c
	}
	if req.TPGs != nil {
		b, err := bindTPGs(m.state, old.TPGTs, *req.TPGs)
		if err != nil {
			return api.Target{}, err
		}
		t.TPGTs = b
	}
	if err := applyTargetProps(&t, req); err != nil {
		return api.Target{}, err
	}
	next := m.state.Clone()
	next.Targets[i] = t
	var undo func()
	if !old.Offline {
		if err := m.updateTargetLocked(ctx, old.Name, m.specLocked(next, t)); err != nil {
			return api.Target{}, err
		}
		undo = func() { _ = m.updateTargetLocked(ctx, t.Name, m.specLocked(m.state, old)) }
	}
	if err := m.commitLocked(next, undo); err != nil {
		return api.Target{}, err
	}
	m.log.Info("target modified", "target", t.Name, "renamed_from", old.Name)
	return m.targetLocked(t), nil
}

// DeleteTarget is itadm delete-target; an online target needs Force, which
// takes it offline first.
func (m *Manager) DeleteTarget(ctx context.Context, req api.NameRequest) (api.Empty, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findTarget(m.state, canonicalTarget(req.Name))
	if i < 0 {
		return api.Empty{}, api.Errorf(api.CodeTargetNotFound, req.Name, "not found")
	}
	t := m.state.Targets[i]
	var undo func()
	if !t.Offline {
		if !req.Force {
			return api.Empty{}, api.Errorf(api.CodeTargetOnline, t.Name, "The target is online or busy")
		}
		if err := m.removeTargetLocked(ctx, t.Name); err != nil {
			return api.Empty{}, err
		}
		undo = func() { _ = m.addTargetLocked(ctx, m.specLocked(m.state, t)) }
	}
	next := m.state.Clone()
	next.Targets = slices.Delete(next.Targets, i, i+1)
	if err := m.commitLocked(next, undo); err != nil {
		return api.Empty{}, err
	}
	m.log.Info("target deleted", "target", t.Name)
	return api.Empty{}, nil
}

// ListTPGs returns the target portal groups in creation order.
func (m *Manager) ListTPGs(context.Context, api.Empty) ([]api.TPG, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]api.TPG, 0, len(m.state.TPGs))
	for _, t := range m.state.TPGs {
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
	for _, g := range m.state.TPGs {
		for _, p := range portals {
			if slices.Contains(g.Portals, p) {
				return api.Empty{}, api.Errorf(api.CodePortalInUse, p, "already in use")
			}
		}
	}
	next := m.state.Clone()
	next.TPGs = append(next.TPGs, store.TPG{Name: req.Name, Portals: portals})
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
	next.TPGs = slices.Delete(next.TPGs, i, i+1)
	var changed []string
	for ti := range next.Targets {
		t := &next.Targets[ti]
		n := len(t.TPGTs)
		t.TPGTs = slices.DeleteFunc(t.TPGTs, func(b store.TPGT) bool { return b.TPG == req.Name })
		if len(t.TPGTs) != n {
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

func findInitiator(st *store.State, name string) int {
	return slices.IndexFunc(st.Initiators, func(i store.Initiator) bool { return i.Name == name })
}

// ListInitiators returns the initiator contexts; secrets only as set/unset.
func (m *Manager) ListInitiators(context.Context, api.Empty) ([]api.Initiator, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]api.Initiator, 0, len(m.state.Initiators))
	for _, in := range m.state.Initiators {
		out = append(out, api.Initiator{Name: in.Name, ChapUser: in.ChapUser, ChapSecretSet: in.ChapSecret != ""})
	}
	return out, nil
}

func applyInitiatorProps(in *store.Initiator, req api.InitiatorRequest) error {
	return applyCHAP(&in.ChapUser, &in.ChapSecret, req.ChapUser, req.ChapSecret, "chapsecret")
}

// CreateInitiator is itadm create-initiator.
func (m *Manager) CreateInitiator(_ context.Context, req api.InitiatorRequest) (api.Empty, error) {
	if !api.HasISCSIPrefix(req.Name) {
		return api.Empty{}, api.Errorf(api.CodeInvalidName, req.Name, "Invalid name")
	}
	name, ok := api.CanonicalISCSIName(req.Name)
	if !ok {
		return api.Empty{}, api.Errorf(api.CodeInvalidISCSIName, req.Name, "Invalid iSCSI name")
	}
	in := store.Initiator{Name: name}
	if err := applyInitiatorProps(&in, req); err != nil {
		return api.Empty{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if findInitiator(m.state, name) >= 0 {
		return api.Empty{}, api.Errorf(api.CodeInitiatorExists, name, "already exists")
	}
	next := m.state.Clone()
	next.Initiators = append(next.Initiators, in)
	if err := m.commitLocked(next, nil); err != nil {
		return api.Empty{}, err
	}
	m.log.Info("initiator created", "initiator", name, "chap_secret_set", in.ChapSecret != "")
	return api.Empty{}, nil
}

// ModifyInitiator is itadm modify-initiator.
func (m *Manager) ModifyInitiator(_ context.Context, req api.InitiatorRequest) (api.Empty, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findInitiator(m.state, canonicalTarget(req.Name))
	if i < 0 {
		return api.Empty{}, api.Errorf(api.CodeInitiatorNotFound, req.Name, "not found")
	}
	in := m.state.Initiators[i]
	if err := applyInitiatorProps(&in, req); err != nil {
		return api.Empty{}, err
	}
	if in == m.state.Initiators[i] {
		return api.Empty{}, nil
	}
	next := m.state.Clone()
	next.Initiators[i] = in
	if err := m.commitLocked(next, nil); err != nil {
		return api.Empty{}, err
	}
	m.log.Info("initiator modified", "initiator", in.Name, "chap_secret_set", in.ChapSecret != "")
	return api.Empty{}, nil
}

// DeleteInitiator is itadm delete-initiator.
func (m *Manager) DeleteInitiator(_ context.Context, req api.NameRequest) (api.Empty, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findInitiator(m.state, canonicalTarget(req.Name))
	if i < 0 {
		return api.Empty{}, api.Errorf(api.CodeInitiatorNotFound, req.Name, "not found")
	}
	next := m.state.Clone()
	next.Initiators = slices.Delete(next.Initiators, i, i+1)
	if err := m.commitLocked(next, nil); err != nil {
		return api.Empty{}, err
	}
	m.log.Info("initiator deleted", "initiator", req.Name)
	return api.Empty{}, nil
}

// LoginAuth is what an iSCSI login must satisfy.
type LoginAuth struct {
	// Required: the login must authenticate with CHAP.
	Required bool
	// InitiatorUser/InitiatorSecret: the initiator's CHAP credentials
	// (itadm create-initiator); the user name defaults to the initiator name.
	InitiatorUser, InitiatorSecret string
	// TargetUser/TargetSecret: the target's own credentials for mutual
	// CHAP; the user name defaults to the target name.
	TargetUser, TargetSecret string
}

// LoginAuth returns the authentication an initiator's login to target (or
// to discovery) must pass: the target's auth method, or the defaults'.
// It never waits for a configuration change in progress.
func (m *Manager) LoginAuth(initiator, target string, discovery bool) (LoginAuth, error) {
	st := m.published.Load()
	method := st.Defaults.Auth
	var la LoginAuth
	if !discovery {
		if i := findTarget(st, canonicalTarget(target)); i >= 0 {
			t := st.Targets[i]
			if t.Auth != "" {
				method = t.Auth
			}
			la.TargetUser, la.TargetSecret = t.ChapUser, t.ChapSecret
			if la.TargetUser == "" && la.TargetSecret != "" {
				la.TargetUser = t.Name
			}
		}
	}
	if i := findInitiator(st, canonicalTarget(initiator)); i >= 0 && st.Initiators[i].ChapSecret != "" {
		in := st.Initiators[i]
		la.InitiatorUser, la.InitiatorSecret = in.ChapUser, in.ChapSecret
		if la.InitiatorUser == "" {
			la.InitiatorUser = initiator
		}
	}
	switch method {
	case "", "none":
	case "chap":
		la.Required = true
	default:
		return LoginAuth{}, fmt.Errorf("authentication method %q is not supported", method)
	}
	return la, nil
}

// GetDefaults is itadm list-defaults.
func (m *Manager) GetDefaults(context.Context, api.Empty) (api.Defaults, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.state.Defaults
	return api.Defaults{
		Auth:            d.Auth,
		RadiusServer:    d.RadiusServer,
		RadiusSecretSet: d.RadiusSecret != "",
		ISNS:            d.ISNS,
		ISNSServers:     slices.Clone(d.ISNSServers),
	}, nil
}

// Default ports of the servers modify-defaults names.
const (
	radiusPort = 1812
	isnsPort   = 3205
)

// refreshTargetsLocked pushes next's configuration to the online targets
// whose names are listed (their effective settings changed) and returns
// the undo that pushes the current state's back.
func (m *Manager) refreshTargetsLocked(ctx context.Context, next *store.State, names []string) (func(), error) {
	var done []string
	undo := func() {
		for _, n := range done {
			if i := findTarget(m.state, n); i >= 0 {
				_ = m.updateTargetLocked(ctx, n, m.specLocked(m.state, m.state.Targets[i]))
			}
		}
	}
	for _, n := range names {
		i := findTarget(next, n)
		if i < 0 || next.Targets[i].Offline {
			continue
		}
		if err := m.updateTargetLocked(ctx, n, m.specLocked(next, next.Targets[i])); err != nil {
			undo()
			return nil, err
		}
		done = append(done, n)
	}
	return undo, nil
}

// ModifyDefaults is itadm modify-defaults.
func (m *Manager) ModifyDefaults(ctx context.Context, req api.DefaultsRequest) (api.Empty, error) {
	if req == (api.DefaultsRequest{}) {
		return api.Empty{}, api.Errorf(api.CodeInvalidArgument, "", "no properties specified")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	next := m.state.Clone()
	d := &next.Defaults
	if req.Auth != nil {
		switch *req.Auth {
		case "none", "chap", "radius":
			d.Auth = *req.Auth
		default:
			return api.Empty{}, api.Errorf(api.CodeInvalidAuth, "auth", "must be none, chap or radius")
		}
	}
	if req.RadiusServer != nil {
		if *req.RadiusServer == "none" {
			d.RadiusServer = ""
		} else {
			c, err := api.CanonicalHostPort(*req.RadiusServer, radiusPort)
			if err != nil {
				return api.Empty{}, api.Errorf(api.CodeInvalidArgument, "radiusserver", "invalid address")
			}
			d.RadiusServer = c
		}
	}
	if req.RadiusSecret != nil {
		if !api.ValidSecret(*req.RadiusSecret) {
			return api.Empty{}, api.Errorf(api.CodeInvalidSecret, "radiussecret", "Secret must be between 12 and 255 characters")
		}
		d.RadiusSecret = *req.RadiusSecret
	}
	if req.ISNS != nil {
		d.ISNS = *req.ISNS
	}
	if req.ISNSServers != nil {
		s := *req.ISNSServers
		if len(s) > 0 && s[0] == "none" {
			d.ISNSServers = nil
		} else {
			if len(s) > 8 {
				return api.Empty{}, api.Errorf(api.CodeInvalidArgument, "isnsserver", "Too many iSNS servers specified, maximum of 8 allowed")
			}
			var out []string
			for _, a := range s {
				c, err := api.CanonicalHostPort(a, isnsPort)
				if err != nil {
					return api.Empty{}, api.Errorf(api.CodeInvalidArgument, a, "invalid address")
				}
				if !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
			d.ISNSServers = out
		}
	}
	if d.Auth == "radius" {
		if d.RadiusServer == "" {
			return api.Empty{}, api.Errorf(api.CodeMissingProp, "radiusserver", "missing required property")
		}
		if d.RadiusSecret == "" {
			return api.Empty{}, api.Errorf(api.CodeMissingProp, "radiussecret", "missing required property")
		}
	}
	var follow []string
	if d.Auth != m.state.Defaults.Auth {
		// Targets that follow the defaults change their effective method.
		for _, t := range next.Targets {
			if t.Auth == "" {
				follow = append(follow, t.Name)
			}
		}
	}
	undo, err := m.refreshTargetsLocked(ctx, next, follow)
	if err != nil {
		return api.Empty{}, err
	}
	if err := m.commitLocked(next, undo); err != nil {
		return api.Empty{}, err
	}
	m.log.Info("defaults modified", "auth", d.Auth, "radius_server", d.RadiusServer, "isns", d.ISNS)
	return api.Empty{}, nil
}
