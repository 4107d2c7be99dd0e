// Command stmfd is the costar SCSI target daemon: it restores the persisted
// COMSTAR-style configuration, serves iSCSI portals and the local
// management API used by stmfadm and itadm.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/daemon"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg, err := config.Load(args, os.Stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stmfd:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	applyMemoryLimit(cfg.MemoryLimit, log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

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
	log.Info("stmfd ready", "portals", d.Addrs(), "state_dir", cfg.StateDir, "socket", d.SocketPath())
	<-ctx.Done()
	stop()
	log.Info("shutting down: draining in-flight I/O")
	sctx, cancel := context.WithTimeout(context.Background(), d.ShutdownTimeout())
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		log.Error("unclean shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
