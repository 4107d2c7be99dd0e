package main

import (
	"github.com/costar-project/costar/internal/blockpat"
	"io"
	"math/rand/v2"
	"testing"
)

func block(lba, seq uint64) []byte {
	b := make([]byte, 512)
	if seq != 0 {
		blockpat.Fill(b, lba, seq, 1)
	}
	return b
}

func TestModelCheck(t *testing.T) {
	m := newModel(16)
	m.writeAcked(0, 2, 5)    // blocks 0,1 hold 5
	m.writeAcked(0, 1, 8)    // block 0 holds 8 now
	m.writeUnknown(2, 1, 9)  // block 2: 0 or 9
	m.writeAcked(3, 1, 4)    // block 3 holds 4
	m.writeUnknown(3, 1, 10) // block 3: 4 or 10
	for _, tc := range []struct {
		name string
		lba  uint64
		data []byte
		want checkResult
	}{
		{"latest acknowledged", 0, block(0, 8), checkOK},
		{"superseded value", 0, block(0, 5), checkLost},
		{"zero after a write", 1, block(1, 0), checkLost},
		{"unknown write absent", 2, block(2, 0), checkOK},
		{"unknown write present", 2, block(2, 9), checkOK},
		{"quarantined, old value", 3, block(3, 4), checkOK},
		{"quarantined, new value", 3, block(3, 10), checkOK},
		{"never written there", 0, block(0, 12), checkMismatch},
		{"another LBA's block", 1, block(0, 8), checkMismatch},
		{"never written block", 7, block(7, 0), checkOK},
	} {
		if got, detail := m.check(tc.lba, tc.data); got != tc.want {
			t.Errorf("%s: check = %v (%s), want %v", tc.name, got, detail, tc.want)
		}
	}
}

func TestModelLocking(t *testing.T) {
	m := newModel(8)
	r := rand.New(rand.NewPCG(1, 2))
	if !m.lockRange(0, 4) {
		t.Fatal("lockRange on a free extent failed")
	}
	if m.lockRange(3, 2) {
		t.Fatal("lockRange overlapped a busy extent")
	}
	lba, ok := m.lock(r, 4, true)
	if !ok || lba != 4 {
		t.Fatalf("lock(4) = %d, %v; want the only free extent 4", lba, ok)
	}
	if _, ok := m.lock(r, 1, false); ok {
		t.Fatal("lock succeeded with every block busy")
	}
	m.writeUnknown(4, 4, 3) // quarantined, and unlocked
	m.unlock(0, 4)
	for i := 0; i < 50; i++ {
		lba, ok := m.lock(r, 2, true)
		if !ok {
			continue
		}
		if lba+2 > 4 {
			t.Fatalf("a write locked quarantined blocks at %d", lba)
		}
		m.unlock(lba, 2)
	}
	if lba, ok := m.lock(r, 8, false); !ok || lba != 0 {
		t.Fatalf("a read could not lock quarantined blocks: %d %v", lba, ok)
	}
	if got := m.quarantined(); got != 4 {
		t.Fatalf("quarantined = %d, want 4", got)
	}
}

func TestParseArgs(t *testing.T) {
	const url = "iscsi://127.0.0.1:3260/iqn.x/0"
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{url}, true},
		{[]string{"-chaos", "abort,view,nop", "-region", "64M", url}, true},
		{[]string{"-chaos", "none", url}, true},
		{[]string{"-chaos", "abort,meteor", url}, false},
		{[]string{"-sessions", "0", url}, false},
		{[]string{"-qd", "2000", url}, false},
		{[]string{"-write-pct", "90", "-sync-pct", "20", url}, false},
		{[]string{"-region", "12X", url}, false},
		{[]string{"-view-lu", "600144F0", url}, false}, // needs -socket
		{[]string{"-duration", "0s", url}, false},
		{[]string{}, false},
		{[]string{"http://x/y/0"}, false},
	} {
		_, err := parseArgs(tc.args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("parseArgs(%q) err = %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{{"0", 0, true}, {"512", 512, true}, {"8M", 8 << 20, true}, {"1g", 1 << 30, true}, {"", 0, false}, {"M", 0, false}, {"-1", 0, false}, {"1.5M", 0, false}} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}
