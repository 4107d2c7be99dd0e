package fc

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/costar-project/costar/stmf"
)

// Server is the FC port provider: one target port per adapter, each a
// target named wwn.<WWPN> that the management plane brings online and
// offline.
type Server struct {
	ports map[string]*Port // by target name
	order []string
}

// ErrNoAdapter reports a target name no adapter carries.
var ErrNoAdapter = errors.New("fc: no adapter has this port name")

// NewServer builds the target ports over the adapters (not started).
func NewServer(fw *stmf.Framework, ads []Adapter, cfg Config) (*Server, error) {
	s := &Server{ports: map[string]*Port{}}
	for _, ad := range ads {
		p, err := NewPort(fw, ad, cfg)
		if err != nil {
			return nil, err
		}
		if _, dup := s.ports[p.Name()]; dup {
			return nil, fmt.Errorf("fc: two adapters with port name %s", p.Name())
		}
		s.ports[p.Name()] = p
		s.order = append(s.order, p.Name())
	}
	sort.Strings(s.order)
	return s, nil
}

// Ports returns the target ports in name order.
func (s *Server) Ports() []*Port {
	out := make([]*Port, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, s.ports[n])
	}
	return out
}

// Port returns the target port named name (wwn.<WWPN>).
func (s *Server) Port(name string) (*Port, bool) {
	p, ok := s.ports[name]
	return p, ok
}

// AddTarget brings the target online in ALUA target port group group.
func (s *Server) AddTarget(name string, group uint16) error {
	p, ok := s.ports[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoAdapter, name)
	}
	if err := p.Online(group); err != nil && !errors.Is(err, ErrOnline) {
		return err
	}
	return nil
}

// RemoveTarget takes the target offline (logging its initiators out).
func (s *Server) RemoveTarget(name string) error {
	p, ok := s.ports[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoAdapter, name)
	}
	p.Offline()
	return nil
}

// Start starts every adapter.
func (s *Server) Start(ctx context.Context) error {
	for _, p := range s.Ports() {
		if err := p.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Shutdown stops every adapter, ending all sessions.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	for _, p := range s.Ports() {
		if err := p.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
