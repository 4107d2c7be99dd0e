// Command stmfd is the costar SCSI target daemon: it restores the persisted
// COMSTAR-style configuration, serves iSCSI portals and the local
// management API used by stmfadm and itadm.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/daemon"
)

func main() { os.Exit(run(os.Args[1:])) }

// manFlag prints stmfd(8) (make man); it is not a setting.
const manFlag = "--generate-man-page"

func run(args []string) int {
	if len(args) == 1 && args[0] == manFlag {
		if _, err := os.Stdout.Write(config.ManPage()); err != nil {
			return 1
		}
		return 0
	}
	cfg, err := config.Load(args, os.Stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stmfd:", err)
		return 2
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	sd := newNotifier(log)
	for _, k := range cfg.Shadowed {
		log.Warn("config file setting overridden by a flag or environment variable", "key", k, "file", cfg.File)
	}
	applyMemoryLimit(cfg.MemoryLimit, log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d, err := daemon.New(cfg, log)
	if err != nil {
		log.Error("cannot initialise", "err", err)
		return 1
	}
	if err := d.Start(ctx); err != nil {
		log.Error("cannot start", "err", err)
		sctx, cancel := context.WithTimeout(context.Background(), d.ShutdownTimeout())
		defer cancel()
		_ = d.Shutdown(sctx)
		return 1
	}
	stopPprof, err := servePprof(cfg.PprofListen, log)
	if err != nil {
		log.Error("cannot serve pprof", "err", err)
		sctx, cancel := context.WithTimeout(context.Background(), d.ShutdownTimeout())
		defer cancel()
		_ = d.Shutdown(sctx)
		return 1
	}
	defer stopPprof()
	log.Info("stmfd ready", "portals", d.Addrs(), "state_dir", cfg.StateDir, "socket", d.SocketPath())
	// Start returned: the state is restored and every portal listens.
	sd.send("READY=1\nSTATUS=" + d.Status(ctx))
	wctx, stopWatchdog := context.WithCancel(ctx)
	go sd.watchdog(wctx, d.Healthy)

	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			reload(ctx, args, d, level, log, sd)
		}
	}
	stop()
	stopWatchdog()
	timeout := d.ShutdownTimeout()
	sd.stopping(timeout)
	log.Info("shutting down: draining in-flight I/O", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		log.Error("unclean shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// reload re-reads the configuration as at start (flags, environment,
// then the config file) and applies what can change live. An invalid
// configuration changes nothing.
func reload(ctx context.Context, args []string, d *daemon.Daemon, level *slog.LevelVar, log *slog.Logger, sd *notifier) {
	sd.reloading()
	log.Info("reload: re-reading the configuration (SIGHUP)")
	next, err := config.Load(args, io.Discard)
	if err != nil {
		log.Error("reload: configuration rejected, nothing changed", "err", err)
		sd.send("READY=1\nSTATUS=reload failed, running configuration kept: " + err.Error())
		return
	}
	rep := d.Reload(ctx, next, level)
	for _, s := range rep.Applied {
		log.Info("reload: applied", "change", s)
	}
	for _, s := range rep.Restart {
		log.Warn("reload: not applied", "change", s)
	}
	for _, s := range rep.Failed {
		log.Error("reload: failed", "change", s)
	}
	for _, k := range rep.Shadowed {
		log.Warn("reload: config file setting overridden by a flag or environment variable", "key", k)
	}
	status := fmt.Sprintf("reloaded: %d applied, %d need a restart, %d failed", len(rep.Applied), len(rep.Restart), len(rep.Failed))
	log.Info("reload: done", "applied", len(rep.Applied), "need_restart", len(rep.Restart), "failed", len(rep.Failed), "portals", d.Addrs())
	sd.send("READY=1\nSTATUS=" + status)
}
