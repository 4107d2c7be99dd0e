package stmf

import "testing"

// wrappedLU is an adapter around an LU, as stmfd's management plane uses.
type wrappedLU struct{ LogicalUnit }

func (w wrappedLU) UnwrapLU() LogicalUnit { return w.LogicalUnit }

// Session.LU hands out the provider's own LU behind an adapter, so that
// EXTENDED COPY can resolve another LU of the same provider.
func TestSessionLUUnwraps(t *testing.T) {
	fw := New(nil)
	inner := &fakeLU{guid: guidN(1)}
	plain := &fakeLU{guid: guidN(2)}
	for _, lu := range []LogicalUnit{wrappedLU{wrappedLU{inner}}, plain} {
		if err := fw.RegisterLU(lu); err != nil {
			t.Fatal(err)
		}
		if _, err := fw.AddView(lu.GUID(), ViewEntry{}, true); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
	s, err := p.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		g    GUID
		want LogicalUnit
	}{{guidN(1), inner}, {guidN(2), plain}, {guidN(3), nil}} {
		got, ok := s.LU(tc.g)
		if ok != (tc.want != nil) || got != tc.want {
			t.Errorf("LU(%v) = %v, %v; want %v", tc.g, got, ok, tc.want)
		}
	}
	if got := unwrapLU(wrappedLU{nil}); got != (wrappedLU{nil}) {
		t.Errorf("an adapter around nothing unwrapped to %v", got)
	}
}
