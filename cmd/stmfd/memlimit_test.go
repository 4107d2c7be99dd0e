package main

import (
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"testing"
)

func TestApplyMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		t.Cleanup(func() { os.Setenv("GOMEMLIMIT", v) })
	}
	os.Unsetenv("GOMEMLIMIT")
	for _, tc := range []struct {
		name  string
		env   string // "" unset
		start int64
		limit int64
		want  int64
	}{
		{"default", "", math.MaxInt64, 48 << 20, 48 << 20},
		{"off keeps the runtime's", "", 99 << 20, -1, 99 << 20},
		{"GOMEMLIMIT wins", "77MiB", 77 << 20, 48 << 20, 77 << 20},
	} {
		debug.SetMemoryLimit(tc.start) // what the runtime took from the environment
		if tc.env != "" {
			t.Setenv("GOMEMLIMIT", tc.env)
		}
		applyMemoryLimit(tc.limit, log)
		if got := debug.SetMemoryLimit(-1); got != tc.want {
			t.Errorf("%s: limit %d, want %d", tc.name, got, tc.want)
		}
		os.Unsetenv("GOMEMLIMIT")
	}
}
