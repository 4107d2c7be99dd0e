package mgmt

import (
	"context"
	"fmt"
	"slices"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
)

// iSCSI authentication: initiator contexts (per-initiator CHAP), itadm's
// defaults, and what a login must satisfy.

func findInitiator(st *store.State, name string) int {
	return slices.IndexFunc(st.ISCSI.Initiators, func(i store.Initiator) bool { return i.Name == name })
}

// ListInitiators returns the initiator contexts; secrets only as set/unset.
func (m *Manager) ListInitiators(context.Context, api.Empty) ([]api.Initiator, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]api.Initiator, 0, len(m.state.ISCSI.Initiators))
	for _, in := range m.state.ISCSI.Initiators {
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
	next.ISCSI.Initiators = append(next.ISCSI.Initiators, in)
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
	in := m.state.ISCSI.Initiators[i]
	if err := applyInitiatorProps(&in, req); err != nil {
		return api.Empty{}, err
	}
	if in == m.state.ISCSI.Initiators[i] {
		return api.Empty{}, nil
	}
	next := m.state.Clone()
	next.ISCSI.Initiators[i] = in
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
	next.ISCSI.Initiators = slices.Delete(next.ISCSI.Initiators, i, i+1)
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
	// RadiusServers and RadiusSecret are set when the method is radius:
	// the initiator's CHAP response is checked by these servers, tried in
	// order (itadm modify-defaults -r names one), and InitiatorSecret is
	// not used.
	RadiusServers []string
	RadiusSecret  string
}

// LoginAuth returns the authentication an initiator's login to target (or
// to discovery) must pass: the target's auth method, or the defaults'.
// It never waits for a configuration change in progress.
func (m *Manager) LoginAuth(initiator, target string, discovery bool) (LoginAuth, error) {
	st := m.published.Load()
	method := st.ISCSI.Defaults.Auth
	var la LoginAuth
	if !discovery {
		if i := findISCSITarget(st, target); i >= 0 {
			t := st.Targets[i]
			if t.ISCSI.Auth != "" {
				method = t.ISCSI.Auth
			}
			la.TargetUser, la.TargetSecret = t.ISCSI.ChapUser, t.ISCSI.ChapSecret
			if la.TargetUser == "" && la.TargetSecret != "" {
				la.TargetUser = t.Name
			}
		}
	}
	if i := findInitiator(st, canonicalTarget(initiator)); i >= 0 && st.ISCSI.Initiators[i].ChapSecret != "" {
		in := st.ISCSI.Initiators[i]
		la.InitiatorUser, la.InitiatorSecret = in.ChapUser, in.ChapSecret
		if la.InitiatorUser == "" {
			la.InitiatorUser = initiator
		}
	}
	switch method {
	case "", "none":
	case "chap":
		la.Required = true
	case "radius":
		d := st.ISCSI.Defaults
		if d.RadiusServer == "" || d.RadiusSecret == "" {
			return LoginAuth{}, fmt.Errorf("authentication method radius needs itadm modify-defaults -r SERVER -D")
		}
		la.Required = true
		la.InitiatorUser, la.InitiatorSecret = "", ""
		la.RadiusServers, la.RadiusSecret = []string{d.RadiusServer}, d.RadiusSecret
	default:
		return LoginAuth{}, fmt.Errorf("authentication method %q is not supported", method)
	}
	return la, nil
}

// GetDefaults is itadm list-defaults.
func (m *Manager) GetDefaults(context.Context, api.Empty) (api.Defaults, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	d := m.state.ISCSI.Defaults
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

// ModifyDefaults is itadm modify-defaults.
func (m *Manager) ModifyDefaults(ctx context.Context, req api.DefaultsRequest) (api.Empty, error) {
	if req == (api.DefaultsRequest{}) {
		return api.Empty{}, api.Errorf(api.CodeInvalidArgument, "", "no properties specified")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	next := m.state.Clone()
	d := &next.ISCSI.Defaults
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
	if d.Auth != m.state.ISCSI.Defaults.Auth {
		// iSCSI targets that follow the defaults change their effective method.
		for _, t := range next.Targets {
			if t.Protocol == store.ProtocolISCSI && t.ISCSI.Auth == "" {
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
