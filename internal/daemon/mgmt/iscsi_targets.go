package mgmt

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strconv"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
)

// iSCSI targets: what itadm creates and configures. The neutral core
// (targets.go) asks this file only for an iSCSI target's spec section,
// its port groups and its itadm fields.

// iSCSI target naming and portal group constants.
const (
	// GeneratedIQNPrefix starts the names create-target generates:
	// <prefix><uuid>, as COMSTAR's iqn.1986-03.com.sun:02:<uuid>.
	GeneratedIQNPrefix = "iqn.2026-11.org.costar:02:"
	// DefaultTPGT is the portal group tag of the default portal group.
	DefaultTPGT = 1
	maxTag      = 0xffff
)

// ISCSITargetSpec is the iSCSI section of a TargetSpec.
type ISCSITargetSpec struct {
	// PortalGroups empty: the default portal group (tag 1, the daemon's portals).
	PortalGroups []PortalGroup
	// Auth is the effective authentication method: none, chap or radius.
	Auth string
	// ChapUser and ChapSecret are the target's own credentials, used for
	// mutual (bidirectional) CHAP. ChapUser "" means the target name.
	ChapUser   string
	ChapSecret string
}

// PortalGroup is a target's binding to a target portal group.
type PortalGroup struct {
	Name    string
	Tag     uint16
	Portals []string // "ip:port"
}

// iscsiSpec is the iSCSI section of a stored iSCSI target's spec.
func iscsiSpec(st *store.State, t store.Target) ISCSITargetSpec {
	it := t.ISCSI
	spec := ISCSITargetSpec{Auth: it.Auth, ChapUser: it.ChapUser, ChapSecret: it.ChapSecret}
	if spec.Auth == "" {
		spec.Auth = st.ISCSI.Defaults.Auth
	}
	if spec.Auth == "" {
		spec.Auth = "none"
	}
	for _, b := range it.TPGTs {
		pg := PortalGroup{Name: b.TPG, Tag: b.Tag}
		if i := findTPG(st, b.TPG); i >= 0 {
			pg.Portals = slices.Clone(st.ISCSI.TPGs[i].Portals)
		}
		spec.PortalGroups = append(spec.PortalGroups, pg)
	}
	return spec
}

// iscsiPortGroups returns the portal group tags of an iSCSI target: each
// portal group is an ALUA target port group.
func iscsiPortGroups(t store.Target) []uint16 {
	if len(t.ISCSI.TPGTs) == 0 {
		return []uint16{DefaultTPGT}
	}
	var out []uint16
	for _, b := range t.ISCSI.TPGTs {
		out = append(out, b.Tag)
	}
	return out
}

// setISCSITarget fills in the itadm fields of an iSCSI target's listing.
func setISCSITarget(out *api.Target, t store.Target) {
	out.Auth = t.ISCSI.Auth
	out.ChapUser = t.ISCSI.ChapUser
	out.ChapSecretSet = t.ISCSI.ChapSecret != ""
	for _, b := range t.ISCSI.TPGTs {
		out.TPGs = append(out.TPGs, api.TPGTag{TPG: b.TPG, Tag: b.Tag})
	}
}

// canonicalTarget returns the canonical form of an iSCSI name operand, or
// the operand itself when it is not a valid name (so lookups fail cleanly).
func canonicalTarget(name string) string {
	if c, ok := api.CanonicalISCSIName(name); ok {
		return c
	}
	return name
}

// findISCSITarget finds an iSCSI target by name operand: itadm sees no
// other protocol's targets.
func findISCSITarget(st *store.State, name string) int {
	i := findTarget(st, canonicalTarget(name))
	if i < 0 || st.Targets[i].Protocol != store.ProtocolISCSI {
		return -1
	}
	return i
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
			t.ISCSI.Auth = *req.Auth
		case "default":
			t.ISCSI.Auth = ""
		default:
			return api.Errorf(api.CodeInvalidAuth, *req.Auth, "must be none, chap, radius or default")
		}
	}
	return applyCHAP(&t.ISCSI.ChapUser, &t.ISCSI.ChapSecret, req.ChapUser, req.ChapSecret, "targetchapsecret")
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
	t := store.Target{Name: name, Protocol: store.ProtocolISCSI}
	if req.TPGs != nil {
		b, err := bindTPGs(m.state, nil, *req.TPGs)
		if err != nil {
			return api.Target{}, err
		}
		t.ISCSI.TPGTs = b
	}
	if err := applyTargetProps(&t, req); err != nil {
		return api.Target{}, err
	}
	next := m.state.Clone()
	next.Targets = append(next.Targets, t)
	if err := m.addTargetLocked(ctx, next, t); err != nil {
		return api.Target{}, err
	}
	if err := m.commitLocked(next, func() { _ = m.removeTargetLocked(ctx, t) }); err != nil {
		return api.Target{}, err
	}
	m.log.Info("target created", "target", name)
	return m.targetLocked(t), nil
}

// ModifyTarget is itadm modify-target.
func (m *Manager) ModifyTarget(ctx context.Context, req api.TargetRequest) (api.Target, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := findISCSITarget(m.state, req.Name)
	if i < 0 {
		return api.Target{}, api.Errorf(api.CodeTargetNotFound, req.Name, "not found")
	}
	old := m.state.Targets[i]
	t := old
	t.ISCSI.TPGTs = slices.Clone(old.ISCSI.TPGTs)
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
		b, err := bindTPGs(m.state, old.ISCSI.TPGTs, *req.TPGs)
		if err != nil {
			return api.Target{}, err
		}
		t.ISCSI.TPGTs = b
	}
	if err := applyTargetProps(&t, req); err != nil {
		return api.Target{}, err
	}
	next := m.state.Clone()
	next.Targets[i] = t
	var undo func()
	if !old.Offline {
		if err := m.updateTargetLocked(ctx, old, next, t); err != nil {
			return api.Target{}, err
		}
		undo = func() { _ = m.updateTargetLocked(ctx, t, m.state, old) }
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
	i := findISCSITarget(m.state, req.Name)
	if i < 0 {
		return api.Empty{}, api.Errorf(api.CodeTargetNotFound, req.Name, "not found")
	}
	t := m.state.Targets[i]
	var undo func()
	if !t.Offline {
		if !req.Force {
			return api.Empty{}, api.Errorf(api.CodeTargetOnline, t.Name, "The target is online or busy")
		}
		if err := m.removeTargetLocked(ctx, t); err != nil {
			return api.Empty{}, err
		}
		undo = func() { _ = m.addTargetLocked(ctx, m.state, t) }
	}
	next := m.state.Clone()
	next.Targets = slices.Delete(next.Targets, i, i+1)
	if err := m.commitLocked(next, undo); err != nil {
		return api.Empty{}, err
	}
	m.log.Info("target deleted", "target", t.Name)
	return api.Empty{}, nil
}
