package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestClusterConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want ClusterConfig
		err  bool
	}{
		{"off by default", nil, ClusterConfig{LeaseTTL: 5 * time.Second, Prefix: "/costar/", HookTimeout: DefaultHookTimeout}, false},
		{"flags", []string{"--cluster-endpoints", "http://127.0.0.1:2379,http://127.0.0.2:2379", "--node-name", "a", "--node-id", "1", "--portal", "127.0.0.1:3260"},
			ClusterConfig{Endpoints: []string{"http://127.0.0.1:2379", "http://127.0.0.2:2379"}, Node: "a", NodeID: 1, LeaseTTL: 5 * time.Second, Prefix: "/costar/", HookTimeout: DefaultHookTimeout}, false},
		{"host name default", []string{"--cluster-endpoints", "http://x:1", "--node-id", "2", "--advertise-portal", "10.0.0.1:3260", "--cluster-lease-ttl", "8s"},
			ClusterConfig{Endpoints: []string{"http://x:1"}, Node: "testhost", NodeID: 2, Portals: []string{"10.0.0.1:3260"}, LeaseTTL: 8 * time.Second, Prefix: "/costar/", HookTimeout: DefaultHookTimeout}, false},
		{"no node id", []string{"--cluster-endpoints", "http://x:1", "--node-name", "a"}, ClusterConfig{}, true},
		{"node id too big", []string{"--cluster-endpoints", "http://x:1", "--node-name", "a", "--node-id", "256"}, ClusterConfig{}, true},
		{"slash in name", []string{"--cluster-endpoints", "http://x:1", "--node-name", "a/b", "--node-id", "1"}, ClusterConfig{}, true},
		{"fractional TTL", []string{"--cluster-endpoints", "http://x:1", "--node-name", "a", "--node-id", "1", "--cluster-lease-ttl", "2500ms"}, ClusterConfig{}, true},
		{"TTL too short", []string{"--cluster-endpoints", "http://x:1", "--node-name", "a", "--node-id", "1", "--cluster-lease-ttl", "1s"}, ClusterConfig{}, true},
		{"bad advertised portal", []string{"--cluster-endpoints", "http://x:1", "--node-name", "a", "--node-id", "1", "--advertise-portal", "nope"}, ClusterConfig{}, true},
		{"relative prefix", []string{"--cluster-endpoints", "http://x:1", "--node-name", "a", "--node-id", "1", "--cluster-prefix", "costar"}, ClusterConfig{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, &bytes.Buffer{})
			if c != nil && c.Cluster.Node == hostnameOr(t) && tc.want.Node == "testhost" {
				c.Cluster.Node = "testhost"
			}
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want err=%v", err, tc.err)
			}
			if err == nil && !equalCluster(c.Cluster, tc.want) {
				t.Errorf("got %+v, want %+v", c.Cluster, tc.want)
			}
		})
	}
}

// The config file's keys are the flags' names.
func TestClusterConfigFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "stmfd.yaml")
	if err := os.WriteFile(f, []byte("cluster-endpoints: [\"http://127.0.0.1:2379\"]\nnode-name: b\nnode-id: 2\ncluster-lease-ttl: 3s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--config", f}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Cluster.Enabled() || c.Cluster.Node != "b" || c.Cluster.NodeID != 2 || c.Cluster.LeaseTTL != 3*time.Second {
		t.Errorf("from file: %+v", c.Cluster)
	}
}

func hostnameOr(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Skip("no host name")
	}
	return h
}

func equalCluster(a, b ClusterConfig) bool {
	eq := func(x, y []string) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return eq(a.Endpoints, b.Endpoints) && eq(a.Portals, b.Portals) && a.Node == b.Node && a.NodeID == b.NodeID && a.LeaseTTL == b.LeaseTTL && a.Prefix == b.Prefix &&
		a.TakeoverHook == b.TakeoverHook && a.ReleaseHook == b.ReleaseHook && a.HookTimeout == b.HookTimeout
}

func TestClusterHookConfig(t *testing.T) {
	dir := t.TempDir()
	exe, plain := filepath.Join(dir, "hook"), filepath.Join(dir, "plain")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--cluster-endpoints", "http://x:1", "--node-name", "a", "--node-id", "1"}
	for _, tc := range []struct {
		name string
		args []string
		want ClusterConfig // hooks and timeout only
		err  bool
	}{
		{"none", nil, ClusterConfig{HookTimeout: DefaultHookTimeout}, false},
		{"both", []string{"--cluster-takeover-hook", exe, "--cluster-release-hook", exe, "--cluster-hook-timeout", "90s"},
			ClusterConfig{TakeoverHook: exe, ReleaseHook: exe, HookTimeout: 90 * time.Second}, false},
		{"relative path", []string{"--cluster-takeover-hook", "hook"}, ClusterConfig{}, true},
		{"missing", []string{"--cluster-release-hook", filepath.Join(dir, "nope")}, ClusterConfig{}, true},
		{"not executable", []string{"--cluster-takeover-hook", plain}, ClusterConfig{}, true},
		{"a directory", []string{"--cluster-takeover-hook", dir}, ClusterConfig{}, true},
		{"timeout too short", []string{"--cluster-hook-timeout", "500ms"}, ClusterConfig{}, true},
		{"timeout too long", []string{"--cluster-hook-timeout", "11m"}, ClusterConfig{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(append(append([]string{}, base...), tc.args...), &bytes.Buffer{})
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want err=%v", err, tc.err)
			}
			if err != nil {
				return
			}
			got := c.Cluster
			if got.TakeoverHook != tc.want.TakeoverHook || got.ReleaseHook != tc.want.ReleaseHook || got.HookTimeout != tc.want.HookTimeout {
				t.Errorf("got hooks %q %q timeout %v, want %+v", got.TakeoverHook, got.ReleaseHook, got.HookTimeout, tc.want)
			}
			if got.Hooks() != (tc.want.TakeoverHook != "" || tc.want.ReleaseHook != "") {
				t.Errorf("Hooks() = %v", got.Hooks())
			}
		})
	}
}
