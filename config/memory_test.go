package config

import (
	"bytes"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want int64
		err  bool
	}{
		{nil, "", 48 << 20, false},
		{[]string{"--memory-limit", "256M"}, "", 256 << 20, false},
		{[]string{"--memory-limit", "off"}, "", -1, false},
		{[]string{"--memory-limit", "OFF"}, "", -1, false},
		{nil, "1G", 1 << 30, false},
		{[]string{"--memory-limit", "0"}, "", 0, true},
		{[]string{"--memory-limit", "8M"}, "", 0, true},
		{[]string{"--memory-limit", "lots"}, "", 0, true},
		{[]string{"--memory-limit", ""}, "", 0, true},
	} {
		t.Setenv("STMFD_MEMORY_LIMIT", tc.env)
		if tc.env == "" {
			t.Setenv("STMFD_MEMORY_LIMIT", DefaultMemoryLimit)
		}
		c, err := Load(tc.args, &bytes.Buffer{})
		if (err != nil) != tc.err || (err == nil && c.MemoryLimit != tc.want) {
			t.Errorf("Load(%v) env %q: %v, %v; want %d err=%v", tc.args, tc.env, c, err, tc.want, tc.err)
		}
	}
}
