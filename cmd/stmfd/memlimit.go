package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// applyMemoryLimit sets the Go soft memory limit from --memory-limit
// (limit < 0: none), unless GOMEMLIMIT is set: the runtime already
// applied that, and an administrator's environment wins.
func applyMemoryLimit(limit int64, log *slog.Logger) {
	if env, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		log.Info("memory limit from GOMEMLIMIT", "value", env, "bytes", debug.SetMemoryLimit(-1))
		return
	}
	if limit < 0 {
		return
	}
	debug.SetMemoryLimit(limit)
	log.Debug("memory limit set", "bytes", limit)
}
