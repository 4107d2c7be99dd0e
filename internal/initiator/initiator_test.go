package initiator

import (
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want URL
		ok   bool
	}{
		{"iscsi://127.0.0.1:3261/iqn.2026-11.org.costar:demo/0", URL{"127.0.0.1:3261", "iqn.2026-11.org.costar:demo", 0}, true},
		{"iscsi://127.0.0.1/iqn.x/1", URL{"127.0.0.1:3260", "iqn.x", 1}, true},
		{"iscsi://[::1]/iqn.x/300", URL{"[::1]:3260", "iqn.x", 300}, true},
		{"iscsi://127.0.0.1/iqn.x", URL{}, false},
		{"iscsi://127.0.0.1/iqn.x/x", URL{}, false},
		{"iscsi://127.0.0.1/iqn.x/16384", URL{}, false},
		{"http://127.0.0.1/iqn.x/0", URL{}, false},
		{"iscsi://127.0.0.1//0", URL{}, false},
	} {
		got, err := ParseURL(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestParseSense(t *testing.T) {
	fixed := make([]byte, 18)
	fixed[0], fixed[2], fixed[7], fixed[12], fixed[13] = 0xf0, 0x0e, 10, 0x1d, 0x00
	binary.BigEndian.PutUint32(fixed[3:7], 5)
	desc := []byte{0x72, 0x02, 0x04, 0x0b, 0, 0, 0, 12, 0x00, 0x0a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 9}
	for _, tc := range []struct {
		name string
		in   []byte
		want Sense
		ok   bool
	}{
		{"fixed with INFORMATION", fixed, Sense{Key: 0x0e, ASC: 0x1d, Info: 5, InfoValid: true}, true},
		{"descriptor with INFORMATION", desc, Sense{Key: 2, ASC: 4, ASCQ: 0x0b, Info: 9, InfoValid: true}, true},
		{"descriptor, header only", desc[:4], Sense{Key: 2, ASC: 4, ASCQ: 0x0b}, true},
		{"descriptor, lying length", append(desc[:8:8], 0x00, 0x20), Sense{Key: 2, ASC: 4, ASCQ: 0x0b}, true},
		{"short fixed", fixed[:10], Sense{}, false},
		{"empty", nil, Sense{}, false},
		{"unknown format", []byte{0x7f, 1, 2, 3}, Sense{}, false},
	} {
		got, ok := ParseSense(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseTargetPortGroups(t *testing.T) {
	data := []byte{0, 0, 0, 24,
		0x00, 0x8f, 0, 1, 0, 0, 0, 1, 0, 0, 0, 3,
		0x02, 0x8f, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4}
	got, err := ParseTargetPortGroups(data)
	want := []TargetPortGroup{{Group: 1, State: 0, Ports: []uint16{3}}, {Group: 2, State: 2, Ports: []uint16{4}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v %v", got, err)
	}
	if _, err := ParseTargetPortGroups([]byte{0, 0, 0, 12, 0, 0x8f, 0, 1, 0, 0, 0, 5}); err == nil {
		t.Error("a descriptor claiming 5 ports in 8 bytes was accepted")
	}
	if _, err := ParseTargetPortGroups([]byte{0, 0}); err == nil {
		t.Error("2 bytes accepted")
	}
}

func TestSerialAndLUN(t *testing.T) {
	for _, tc := range []struct {
		a, b uint32
		le   bool
	}{{1, 1, true}, {1, 2, true}, {2, 1, false}, {0xffffffff, 0, true}, {0, 0xffffffff, false}} {
		if got := SerialLE(tc.a, tc.b); got != tc.le {
			t.Errorf("SerialLE(%#x, %#x) = %v", tc.a, tc.b, got)
		}
	}
	if LUNField(5) != 0x0005<<48 || LUNField(300) != 0x412c<<48 {
		t.Errorf("LUNField: %#x %#x", LUNField(5), LUNField(300))
	}
}

func TestForget(t *testing.T) {
	s := &Session{pending: map[uint32]*Pending{}}
	p := &Pending{ITT: 7, done: make(chan struct{})}
	other := &Pending{ITT: 7, done: make(chan struct{})} // same ITT, a different command
	s.pending[7] = p
	if s.Forget(other, errors.New("x")) {
		t.Fatal("Forget gave up a command it does not hold")
	}
	if !s.Forget(p, errors.New("overdue")) {
		t.Fatal("Forget of a pending command returned false")
	}
	if _, err := p.Wait(context.Background()); !errors.Is(err, ErrForgotten) {
		t.Fatalf("Wait after Forget = %v, want ErrForgotten", err)
	}
	if s.Forget(p, errors.New("again")) || len(s.pending) != 0 {
		t.Fatal("a second Forget succeeded or the command is still pending")
	}
	// A late final response for it is ignored (take finds nothing).
	if s.take(7, true) != nil {
		t.Fatal("forgotten command still reachable by its ITT")
	}
}
