package mgmt

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
)

// step is one command of an apply plan: how COMSTAR's tools would say it,
// and the single verb that does it.
type step struct {
	cmd string
	run func(ctx context.Context, m *Manager) error
}

// planner computes the steps that make a running configuration match a
// Config. It only reads; the steps act when run. Order: defaults, portal
// groups, initiators, targets, groups, the targets going offline for their
// target group changes, membership, LUs, views (removals first, so that a
// LUN can move), LU and target states, ALUA, and last, with prune, the
// deletions.
type planner struct {
	cur     running
	want    api.Config
	secrets map[string]string
	prune   bool
	exists  func(path string) bool // whether a backing store path exists

	steps []step
	// phases collected separately, concatenated in order at the end
	offline, removeMembers, addMembers, luSteps, removeViews, addViews, luStates, online, alua, deletes []step
}

func (p *planner) add(list *[]step, run func(ctx context.Context, m *Manager) error, format string, args ...any) {
	*list = append(*list, step{cmd: fmt.Sprintf(format, args...), run: run})
}

func planErr(subject, format string, args ...any) error {
	return api.Errorf(api.CodeInvalidArgument, subject, format, args...)
}

// planConfig validates want against the running configuration and returns
// the plan. An empty plan means no change.
func planConfig(cur running, req api.ApplyRequest, exists func(string) bool) ([]step, error) {
	p := &planner{cur: cur, want: req.Config, secrets: req.Secrets, prune: req.Prune, exists: exists}
	if p.want.Version != api.ConfigVersion {
		return nil, planErr("version", "unsupported configuration version %d (this stmfd reads version %d)", p.want.Version, api.ConfigVersion)
	}
	if err := p.normalise(); err != nil {
		return nil, err
	}
	var before []step
	for _, f := range []func(*[]step) error{p.planDefaults, p.planTPGs, p.planInitiators, p.planTargets} {
		if err := f(&before); err != nil {
			return nil, err
		}
	}
	var groups []step
	if err := p.planGroups(&groups); err != nil {
		return nil, err
	}
	if err := p.planLUs(); err != nil {
		return nil, err
	}
	if err := p.planViews(); err != nil {
		return nil, err
	}
	if err := p.planALUA(); err != nil {
		return nil, err
	}
	p.planPrune()
	out := slices.Concat(before, groups, p.offline, p.removeMembers, p.addMembers, p.luSteps,
		p.removeViews, p.addViews, p.luStates, p.online, p.alua, p.deletes)
	return out, nil
}

// secret resolves a secret reference: the secret and whether it is to be
// set. A reference the secrets file lacks keeps a secret already set.
func (p *planner) secret(ref, have, subject string) (string, bool, error) {
	if ref == "" {
		return "", false, nil // never cleared: itadm cannot unset a secret either
	}
	s, ok := p.secrets[ref]
	if !ok {
		if have != "" {
			return "", false, nil
		}
		return "", false, planErr(subject, "secret %q is not in the secrets file", ref)
	}
	if !api.ValidSecret(s) {
		return "", false, api.Errorf(api.CodeInvalidSecret, subject, "secret %q must be between 12 and 255 characters", ref)
	}
	return s, s != have, nil
}

func (p *planner) planDefaults(out *[]step) error {
	w := p.want.Defaults
	if w == nil {
		return nil
	}
	have := p.cur.st.ISCSI.Defaults
	var req api.DefaultsRequest
	var args []string
	if authName(w.Auth) != authName(have.Auth) {
		a := authName(w.Auth)
		req.Auth = &a
		args = append(args, "-a "+a)
	}
	if w.RadiusServer != have.RadiusServer {
		s := w.RadiusServer
		if s == "" {
			s = "none"
		}
		req.RadiusServer = &s
		args = append(args, "-r "+s)
	}
	if s, set, err := p.secret(w.RadiusSecretRef, have.RadiusSecret, "radius-secret-ref"); err != nil {
		return err
	} else if set {
		req.RadiusSecret = &s
		args = append(args, "-D (secret "+w.RadiusSecretRef+")")
	}
	if w.ISNS != have.ISNS {
		req.ISNS = &w.ISNS
		args = append(args, "-i "+map[bool]string{true: "enable", false: "disable"}[w.ISNS])
	}
	if !slices.Equal(w.ISNSServers, have.ISNSServers) {
		s := w.ISNSServers
		if len(s) == 0 {
			s = []string{"none"}
		}
		req.ISNSServers = &s
		args = append(args, "-I "+strings.Join(s, ","))
	}
	if len(args) > 0 {
		p.add(out, func(ctx context.Context, m *Manager) error {
			_, err := m.ModifyDefaults(ctx, req)
			return err
		}, "itadm modify-defaults %s", strings.Join(args, " "))
	}
	return nil
}

func (p *planner) planTPGs(out *[]step) error {
	for _, w := range p.want.TPGs {
		i := findTPG(p.cur.st, w.Name)
		if i < 0 {
			req := api.TPG{Name: w.Name, Portals: slices.Clone(w.Portals)}
			p.add(out, func(ctx context.Context, m *Manager) error {
				_, err := m.CreateTPG(ctx, req)
				return err
			}, "itadm create-tpg %s %s", w.Name, strings.Join(w.Portals, " "))
			continue
		}
		have := slices.Sorted(slices.Values(p.cur.st.ISCSI.TPGs[i].Portals))
		if !slices.Equal(have, slices.Sorted(slices.Values(w.Portals))) {
			return planErr(w.Name, "portal group's portals differ (%s in the running configuration); itadm has no modify-tpg: delete-tpg and create-tpg it by hand",
				strings.Join(have, " "))
		}
	}
	return nil
}

func (p *planner) planInitiators(out *[]step) error {
	for _, w := range p.want.Initiators {
		i := findInitiator(p.cur.st, w.Name)
		var have store.Initiator
		if i >= 0 {
			have = p.cur.st.ISCSI.Initiators[i]
		}
		s, setSecret, err := p.secret(w.ChapSecretRef, have.ChapSecret, w.Name)
		if err != nil {
			return err
		}
		req := api.InitiatorRequest{Name: w.Name}
		var args []string
		if w.ChapUser != have.ChapUser {
			u := w.ChapUser
			if u == "" {
				u = "none"
			}
			req.ChapUser = &u
			args = append(args, "-u "+u)
		}
		if setSecret {
			req.ChapSecret = &s
			args = append(args, "-s (secret "+w.ChapSecretRef+")")
		}
		switch {
		case i < 0:
			p.add(out, func(ctx context.Context, m *Manager) error {
				_, err := m.CreateInitiator(ctx, req)
				return err
			}, "itadm create-initiator %s", joinArgs(args, w.Name))
		case len(args) > 0:
			p.add(out, func(ctx context.Context, m *Manager) error {
				_, err := m.ModifyInitiator(ctx, req)
				return err
			}, "itadm modify-initiator %s", joinArgs(args, w.Name))
		}
	}
	return nil
}

func joinArgs(args []string, operand string) string {
	return strings.Join(append(slices.Clone(args), operand), " ")
}

// planTargets creates and modifies iSCSI targets; online state and target
// group membership are planGroups'.
func (p *planner) planTargets(out *[]step) error {
	for _, w := range p.want.Targets {
		i := findTarget(p.cur.st, w.Name)
		proto := w.Protocol
		if proto == "" {
			proto = store.ProtocolISCSI
		}
		if i < 0 && proto != store.ProtocolISCSI {
			return planErr(w.Name, "%s targets come from their hardware and cannot be created", proto)
		}
		var have store.Target
		if i >= 0 {
			have = p.cur.st.Targets[i]
			if have.Protocol != proto {
				return planErr(w.Name, "target is %s in the running configuration, not %s", have.Protocol, proto)
			}
		}
		if proto != store.ProtocolISCSI {
			if w.Alias != have.Alias || w.Auth != "" || w.ChapUser != "" || w.ChapSecretRef != "" || len(w.TPGs) > 0 {
				return planErr(w.Name, "only iSCSI targets have an alias, authentication and portal groups")
			}
			continue
		}
		if err := p.checkTags(w, have.ISCSI.TPGTs); err != nil {
			return err
		}
		s, setSecret, err := p.secret(w.ChapSecretRef, have.ISCSI.ChapSecret, w.Name)
		if err != nil {
			return err
		}
		req := api.TargetRequest{Name: w.Name}
		var args []string
		if w.Alias != have.Alias {
			a := cmpOr(w.Alias, "none")
			req.Alias = &a
			args = append(args, "-l "+a)
		}
		if w.Auth != have.ISCSI.Auth {
			a := cmpOr(w.Auth, "default")
			req.Auth = &a
			args = append(args, "-a "+a)
		}
		if w.ChapUser != have.ISCSI.ChapUser {
			u := cmpOr(w.ChapUser, "none")
			req.ChapUser = &u
			args = append(args, "-u "+u)
		}
		if setSecret {
			req.ChapSecret = &s
			args = append(args, "-s (secret "+w.ChapSecretRef+")")
		}
		names := tpgNames(w.TPGs)
		if !slices.Equal(slices.Sorted(slices.Values(names)), slices.Sorted(slices.Values(tpgNames(exportTags(have.ISCSI.TPGTs))))) {
			t := slices.Clone(names)
			if len(t) == 0 {
				t = []string{"default"}
			}
			req.TPGs = &t
			args = append(args, "-t "+strings.Join(t, ","))
		}
		switch {
		case i < 0:
			p.add(out, func(ctx context.Context, m *Manager) error {
				_, err := m.CreateTarget(ctx, req)
				return err
			}, "itadm create-target %s", joinArgs(args, "-n "+w.Name))
		case len(args) > 0:
			p.add(out, func(ctx context.Context, m *Manager) error {
				_, err := m.ModifyTarget(ctx, req)
				return err
			}, "itadm modify-target %s", joinArgs(args, w.Name))
		}
	}
	return nil
}

func cmpOr(s, empty string) string {
	if s == "" {
		return empty
	}
	return s
}

func exportTags(b []store.TPGT) []api.TPGTag {
	out := make([]api.TPGTag, 0, len(b))
	for _, t := range b {
		out = append(out, api.TPGTag{TPG: t.TPG, Tag: t.Tag})
	}
	slices.SortFunc(out, func(a, b api.TPGTag) int { return int(a.Tag) - int(b.Tag) })
	return out
}

func tpgNames(ts []api.TPGTag) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, t.TPG)
	}
	return out
}

// checkTags makes sure the portal group tags the file gives are the ones
// itadm will assign (bindTPGs' rule: kept bindings keep their tag, new
// ones get the next), since initiators and ALUA know the tags.
func (p *planner) checkTags(w api.ConfigTarget, have []store.TPGT) error {
	var got []store.TPGT
	for _, b := range have {
		if slices.ContainsFunc(w.TPGs, func(t api.TPGTag) bool { return t.TPG == b.TPG }) {
			got = append(got, b)
		}
	}
	for _, t := range w.TPGs {
		i := slices.IndexFunc(got, func(b store.TPGT) bool { return b.TPG == t.TPG })
		if i < 0 {
			tag, err := tagFor(t.TPG, got)
			if err != nil {
				return err
			}
			got = append(got, store.TPGT{TPG: t.TPG, Tag: tag})
			i = len(got) - 1
		}
		if t.Tag != 0 && got[i].Tag != t.Tag {
			return planErr(w.Name, "portal group %s would get tag %d, not %d: itadm assigns tags; bind it by hand or drop the tag", t.TPG, got[i].Tag, t.Tag)
		}
	}
	return nil
}
