package iscsi

import (
	"slices"
)

// GroupPortals returns, for every portal group tag a served target is
// bound to, the addresses its portals are served on (a listener's actual
// address, so a configured port 0 shows the port it got), sorted. A
// portal that does not listen is left out: it reaches nobody. A cluster
// node advertises these to the other nodes.
func (s *Server) GroupPortals() map[uint16][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[uint16][]string{}
	for _, t := range s.targets {
		for _, g := range t.groups {
			if _, ok := out[g.tag]; !ok {
				out[g.tag] = []string{}
			}
			for _, k := range g.portals {
				p := s.portals[k]
				if p == nil || p.bound == nil {
					continue
				}
				if a := p.bound.String(); !slices.Contains(out[g.tag], a) {
					out[g.tag] = append(out[g.tag], a)
				}
			}
		}
	}
	for _, ps := range out {
		slices.Sort(ps)
	}
	return out
}
