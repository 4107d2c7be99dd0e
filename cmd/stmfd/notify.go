package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// notifier speaks systemd's sd_notify protocol (Type=notify). Without
// $NOTIFY_SOCKET (not started by systemd) every call does nothing.
type notifier struct {
	log *slog.Logger
}

func newNotifier(log *slog.Logger) *notifier { return &notifier{log: log} }

func (n *notifier) send(state string) {
	if _, err := sddaemon.SdNotify(false, state); err != nil {
		n.log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// reloading tells systemd a reload started; READY=1 ends it. MONOTONIC_USEC
// is what Type=notify-reload (systemd 253+) wants with it.
func (n *notifier) reloading() {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		n.send(sddaemon.SdNotifyReloading)
		return
	}
	n.send(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", sddaemon.SdNotifyReloading, ts.Nano()/1000))
}

// stopping tells systemd the shutdown started and may take the daemon's
// own drain bound plus a margin: systemd extends TimeoutStopSec= to it when
// --shutdown-timeout is longer, so it never kills a drain that is in time.
func (n *notifier) stopping(drain time.Duration) {
	n.send(fmt.Sprintf("%s\nEXTEND_TIMEOUT_USEC=%d", sddaemon.SdNotifyStopping, (drain + 15*time.Second).Microseconds()))
}

// watchdog pings systemd's watchdog (WatchdogSec=) at half its interval,
// but only while healthy succeeds within that half: a wedged iSCSI server
// stops the pings and systemd restarts the daemon.
func (n *notifier) watchdog(ctx context.Context, healthy func(context.Context) error) {
	every, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("watchdog settings unusable", "err", err)
		return
	}
	if every <= 0 {
		return
	}
	every /= 2
	n.log.Info("systemd watchdog enabled", "ping_every", every)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, every)
		err := healthy(hctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				n.log.Error("watchdog: unhealthy, not pinging systemd", "err", err)
			}
			continue
		}
		n.send(sddaemon.SdNotifyWatchdog)
	}
}
