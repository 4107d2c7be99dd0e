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
		want                *FCAdapter
	}{
		{name: "fcoe", file: "fc:\n  adapters:\n    - kind: fcoe\n      interface: veth0\n      port-wwn: 10:00:00:00:00:00:00:01\n      beacon-seconds: 2\n      port-group: 7\n",
			want: &FCAdapter{Kind: "fcoe", Interface: "veth0", PortWWN: "10:00:00:00:00:00:00:01", BeaconSeconds: 2, PortGroup: 7}},
		{name: "no section", file: "state-dir: /tmp/x\n"},
		{name: "empty list", file: "fc:\n  adapters: []\n"},
		{name: "unknown kind", file: "fc:\n  adapters:\n    - kind: qlt\n", wantErr: `unknown adapter kind "qlt"`},
		{name: "loopback is for tests only", file: "fc:\n  adapters:\n    - kind: loopback\n", wantErr: `unknown adapter kind "loopback"`},
		{name: "bad wwn", file: "fc:\n  adapters:\n    - kind: x\n      port-wwn: 12\n", wantErr: "fc.adapters[0]"},
		{name: "fcoe without interface", file: "fc:\n  adapters:\n    - kind: fcoe\n", wantErr: "needs an interface"},
		{name: "fcoe twice on one interface", file: "fc:\n  adapters:\n    - kind: fcoe\n      interface: veth0\n    - kind: fcoe\n      interface: veth0\n", wantErr: "already fc.adapters[0]"},
		{name: "fcoe bad port group", file: "fc:\n  adapters:\n    - kind: fcoe\n      interface: veth0\n      port-group: 70000\n", wantErr: "port-group"},
		{name: "fcoe bad beacon", file: "fc:\n  adapters:\n    - kind: fcoe\n      interface: veth0\n      beacon-seconds: -1\n", wantErr: "beacon-seconds"},
		{name: "fcoe bad node wwn", file: "fc:\n  adapters:\n    - kind: fcoe\n      interface: veth0\n      node-wwn: 20:00:zz:00:00:00:00:01\n", wantErr: "not a WWN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "stmfd.yaml")
			if err := os.WriteFile(file, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load([]string{"--config", file}, io.Discard)
			if tc.want != nil {
				if err != nil || len(c.FC.Adapters) != 1 || c.FC.Adapters[0] != *tc.want {
					t.Fatalf("Load: %v, %+v", err, c.FC)
				}
				return
			}
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
