package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/lu"
)

// Replicated reservations: with a journal (cluster mode's etcd one, or a
// test's), every LU the daemon opens commits its reservation changes to
// it before GOOD and applies the other nodes' changes (lu/pr_journal.go).

// WithReservationJournal makes every LU the daemon creates or opens
// replicate its reservations through j, from before it is registered
// with stmf (so no change is ever answered GOOD unreplicated).
func WithReservationJournal(j lu.ReservationJournal) Option {
	return func(d *Daemon) { d.resvJournal = j }
}

// luProvider is the daemon's LU provider, replicating reservations when a
// journal is set.
func (d *Daemon) luProvider(log *slog.Logger) *luProvider {
	p := newLUProvider(hostID(), log.With("component", "lu"))
	p.journal = d.resvJournal
	return p
}

// disk adapts a freshly opened device to mgmt.LU; with a journal its
// reservations replicate first. On error the device is discarded (or
// closed when discard is nil) and the caller undoes the rest.
func (p *luProvider) disk(ctx context.Context, d *lu.Device, discard func()) (mgmt.LU, error) {
	if p.journal != nil {
		if err := d.ReplicateReservations(ctx, p.journal); err != nil {
			if discard != nil {
				discard()
			} else {
				d.Close()
			}
			return nil, fmt.Errorf("LU %s: %w", d.GUID(), err)
		}
	}
	return &luDisk{Device: d, discard: discard}, nil
}
