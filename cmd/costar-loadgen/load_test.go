package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/hotpath"
	"github.com/costar-project/costar/internal/initiator"
)

// TestLoadAgainstTarget runs the engine against the in-process target:
// every mode counts what it did without errors, and the data 1 MiB writes
// sent through R2T-solicited Data-Out is what the LU then holds.
func TestLoadAgainstTarget(t *testing.T) {
	addr := hotpath.StartTarget(t, 0)
	url := "iscsi://" + addr + "/" + hotpath.Target + "/0"
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		args          []string
		reads, writes bool
	}{
		{"randread", []string{"-rw", "randread", "-qd", "8"}, true, false},
		{"randwrite fua", []string{"-rw", "randwrite", "-qd", "8", "-fua"}, false, true},
		{"randrw digests two sessions", []string{"-rw", "randrw", "-sessions", "2", "-digests"}, true, true},
		{"qd1 read", []string{"-rw", "read", "-qd", "1"}, true, false},
		{"QD beyond the CmdSN window (128)", []string{"-rw", "randread", "-qd", "256"}, true, false},
		{"1 MiB reads", []string{"-rw", "read", "-bs", "1048576", "-qd", "4"}, true, false},
		{"1 MiB writes", []string{"-rw", "write", "-bs", "1048576", "-qd", "4"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseArgs(append(tc.args, "-duration", "300ms", url), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := load(ctx, o, &out, io.Discard); err != nil {
				t.Fatalf("load: %v\n%s", err, out.String())
			}
			var ops, reads, writes, nerr uint64
			if _, err := fmt.Sscanf(out.String(), "RESULT ops=%d reads=%d writes=%d errors=%d", &ops, &reads, &writes, &nerr); err != nil {
				t.Fatalf("%q: %v", out.String(), err)
			}
			if nerr != 0 || ops != reads+writes || (reads > 0) != tc.reads || (writes > 0) != tc.writes {
				t.Fatalf("%s", out.String())
			}
		})
	}
	// The last run wrote 1 MiB commands from LBA 0 on (session 0's
	// pattern): read the first one back.
	s, err := initiator.Dial(ctx, initiator.Config{Portal: addr, Target: hotpath.Target, Initiator: "iqn.2026-12.test:check"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.ClearUnitAttentions(ctx, 0); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := s.Do(rctx, 0, initiator.Read16(0, 1<<20/hotpath.BlockSize), nil, 1<<20)
	if err != nil || r.Status != initiator.StatusGood || len(r.Data) != 1<<20 {
		t.Fatalf("read back: %v %v (%d bytes)", err, r, len(r.Data))
	}
	for i, b := range r.Data {
		if b != pattern(i, 0) {
			t.Fatalf("byte %d: %#x, want %#x", i, b, pattern(i, 0))
		}
	}
}
