package iscsi

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// SetPortals replaces the default portal group's listen addresses live
// (stmfd's reload): listeners open for the new addresses and close for the
// removed ones, the targets served on the default portal group follow, and
// sessions that came in through a removed portal are closed. Sessions on
// unchanged portals are untouched. When a new portal cannot listen nothing
// changes and the error says why.
func (s *Server) SetPortals(ctx context.Context, portals []string) error {
	if len(portals) == 0 {
		return errors.New("iscsi: the default portal group needs at least one portal")
	}
	for _, p := range portals {
		if err := checkPortal(p); err != nil {
			return err
		}
	}
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	inUse := s.wantedLocked()
	strict := map[string]bool{}
	for _, p := range portals {
		if !inUse[p] {
			strict[p] = true
		}
	}
	old := s.cfg.Portals
	s.cfg.Portals = slices.Clone(portals)
	deflt := s.setDefaultGroupsLocked(s.cfg.Portals)
	s.mu.Unlock()

	if err := s.reconcile(ctx, strict); err != nil {
		s.mu.Lock()
		s.cfg.Portals = old
		s.setDefaultGroupsLocked(old)
		s.mu.Unlock()
		if rerr := s.reconcile(context.WithoutCancel(ctx), nil); rerr != nil {
			s.log.Error("iscsi: restoring the default portals", "err", rerr)
		}
		return fmt.Errorf("iscsi: default portals unchanged: %w", err)
	}
	for _, t := range deflt {
		s.closeInvalidSessions(t, "portal removed from the default portal group")
	}
	s.log.Info("iscsi: default portal group changed", "portals", portals)
	return nil
}

// setDefaultGroupsLocked gives every target served on the default portal
// group the portals p, and returns those targets. Groups are replaced, not
// edited: readers hold s.mu and may keep an old one.
func (s *Server) setDefaultGroupsLocked(p []string) []*target {
	var out []*target
	for _, t := range s.targets {
		if len(t.cfg.PortalGroups) != 0 {
			continue
		}
		groups := make([]*tgroup, len(t.groups))
		for i, g := range t.groups {
			ng := *g
			ng.portals = slices.Clone(p)
			groups[i] = &ng
		}
		t.groups = groups
		out = append(out, t)
	}
	return out
}
