package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/costar-project/costar/config"
)

// ReloadReport says what a reload (SIGHUP) did with each changed setting.
type ReloadReport struct {
	Applied []string // "portal: added 10.0.0.6:3260; removed 10.0.0.5:3260"
	Restart []string // changes that wait for a restart
	Failed  []string // live changes that could not be applied (nothing changed for them)
	// Shadowed are config file keys a flag or STMFD_* variable overrides.
	Shadowed []string
}

// OK reports whether every change was applied or is only waiting for a restart.
func (r ReloadReport) OK() bool { return len(r.Failed) == 0 }

// applyLive applies the change of one live setting (config.Diff says
// which are live) to the running daemon and d.cfg, and says what it did.
// Callers hold cfgMu.
func (d *Daemon) applyLive(ctx context.Context, key string, next *config.Config, level *slog.LevelVar) (string, error) {
	switch key {
	case "log-level":
		if level == nil {
			return "", fmt.Errorf("the log level is fixed in this process")
		}
		level.Set(next.LogLevel)
		d.cfg.LogLevel = next.LogLevel
		return strings.ToLower(next.LogLevel.String()), nil
	case "portal":
		if err := d.iscsi.SetPortals(ctx, next.ISCSI.Portals); err != nil {
			return "", err
		}
		added, removed := config.PortalDelta(d.cfg.ISCSI.Portals, next.ISCSI.Portals)
		d.cfg.ISCSI.Portals = append([]string(nil), next.ISCSI.Portals...)
		return fmt.Sprintf("added %s; removed %s", list(added), list(removed)), nil
	case "metrics-listen":
		// The new listener opens before the old one closes; a bad
		// address leaves the old one serving.
		if err := d.metrics.Reconfigure(ctx, next.MetricsListen); err != nil {
			return "", err
		}
		d.cfg.MetricsListen = next.MetricsListen
		if next.MetricsListen == "" {
			return "off", nil
		}
		return next.MetricsListen, nil
	case "shutdown-timeout":
		d.cfg.ShutdownSeconds = next.ShutdownSeconds
		return fmt.Sprintf("%ds", next.ShutdownSeconds), nil
	}
	return "", errNotLive
}

// errNotLive marks a setting config calls live that the daemon cannot apply.
var errNotLive = errors.New("cannot be changed live")

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// Reload applies the live settings of next that differ from the running
// configuration and reports the others. level is the log handler's level.
// A live change that fails leaves that setting as it was; the others are
// still applied. Reloads are serialised.
func (d *Daemon) Reload(ctx context.Context, next *config.Config, level *slog.LevelVar) ReloadReport {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	rep := ReloadReport{Shadowed: next.Shadowed}
	d.cfgMu.Lock()
	running := *d.cfg
	d.cfgMu.Unlock()
	for _, c := range config.Diff(&running, next) {
		if !c.Live {
			rep.Restart = append(rep.Restart, fmt.Sprintf("%s: %s -> %s (needs a restart)", c.Key, c.Old, c.New))
			continue
		}
		d.cfgMu.Lock() // applyLive updates d.cfg; ShutdownTimeout reads it
		what, err := d.applyLive(ctx, c.Key, next, level)
		d.cfgMu.Unlock()
		if errors.Is(err, errNotLive) {
			rep.Restart = append(rep.Restart, fmt.Sprintf("%s: %s -> %s (needs a restart)", c.Key, c.Old, c.New))
			continue
		}
		if err != nil {
			rep.Failed = append(rep.Failed, fmt.Sprintf("%s: %s -> %s not applied: %v", c.Key, c.Old, c.New, err))
			continue
		}
		rep.Applied = append(rep.Applied, c.Key+": "+what)
	}
	return rep
}
