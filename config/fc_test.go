package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFCAdapters: the fc section is read from the config file; an adapter
// kind stmfd cannot build is refused, never accepted and left idle.
func TestFCAdapters(t *testing.T) {
	tests := []struct {
		name, file, wantErr string
	}{
		{name: "no section", file: "state-dir: /tmp/x\n"},
		{name: "empty list", file: "fc:\n  adapters: []\n"},
		{name: "unknown kind", file: "fc:\n  adapters:\n    - kind: qlt\n", wantErr: `unknown adapter kind "qlt"`},
		{name: "loopback is for tests only", file: "fc:\n  adapters:\n    - kind: loopback\n", wantErr: `unknown adapter kind "loopback"`},
		{name: "bad wwn", file: "fc:\n  adapters:\n    - kind: x\n      port-wwn: 12\n", wantErr: "fc.adapters[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "stmfd.yaml")
			if err := os.WriteFile(file, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load([]string{"--config", file}, io.Discard)
			if tc.wantErr == "" {
				if err != nil || len(c.FC.Adapters) != 0 {
					t.Fatalf("Load: %v, %+v", err, c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Load: %v, want %q", err, tc.wantErr)
			}
		})
	}
}
