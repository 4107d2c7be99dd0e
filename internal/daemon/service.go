package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/costar-project/costar/api"
)

// Status is a one-line summary for the service manager (systemd STATUS=).
func (d *Daemon) Status(ctx context.Context) string {
	lus, err := d.mgr.ListLUs(ctx, api.Empty{})
	if err != nil {
		return fmt.Sprintf("portals %v; LUs unknown: %v", d.Addrs(), err)
	}
	online := 0
	for _, l := range lus {
		if l.Status == "Online" {
			online++
		}
	}
	s := fmt.Sprintf("portals %v; %d LUs online", d.Addrs(), online)
	if n := len(lus) - online; n > 0 {
		s += fmt.Sprintf(", %d offline (stmfadm list-lu -v says why)", n)
	}
	return s
}

// Healthy answers the watchdog: the iSCSI server answers (its lock is
// free) and still listens. It does not take the management lock, which a
// long create-lu may hold for minutes. It returns ctx's error when the
// server does not answer in time.
func (d *Daemon) Healthy(ctx context.Context) error {
	done := make(chan int, 1)
	// A wedged server keeps this goroutine; systemd restarts the daemon
	// WatchdogSec later anyway.
	go func() { done <- len(d.iscsi.Addrs()) }()
	select {
	case n := <-done:
		if n == 0 {
			return errors.New("no portal is listening")
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("iSCSI server does not answer: %w", ctx.Err())
	}
}
