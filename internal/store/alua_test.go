package store

import (
	"path/filepath"
	"reflect"
	"testing"
)

func TestALUARoundTripAndClone(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	want := &State{ALUA: []ALUAGroup{{Tag: 2, State: "standby"}, {Tag: 3, State: "active-nonoptimized"}}}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.ALUA, want.ALUA) {
		t.Fatalf("ALUA round trip: %+v, want %+v", got.ALUA, want.ALUA)
	}
	c := got.Clone()
	c.ALUA[0].State = "unavailable"
	if got.ALUA[0].State != "standby" {
		t.Fatal("changing the clone's ALUA states changed the original")
	}
}
