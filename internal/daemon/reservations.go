package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/costar-project/costar/internal/cluster"
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
	p.deferJournal = d.cfg.Cluster.Enabled() // every node opens the LUs; only an owner replays
	d.lup = p
	return p
}

// connectReservations, in cluster mode, connects the reservation journal
// before Restore opens the first LU, so that every LU replicates from the
// start (the membership and ownership client connects later, once the
// portals are open). A journal given with WithReservationJournal wins.
func (d *Daemon) connectReservations(ctx context.Context) error {
	cc := d.cfg.Cluster
	if !cc.Enabled() || d.lup.journal != nil {
		return nil
	}
	c, err := cluster.New(ctx, cluster.Config{Endpoints: cc.Endpoints, Node: cc.Node, Prefix: cc.Prefix, TTL: cc.LeaseTTL},
		d.log.With("component", "reservations"))
	if err != nil {
		return fmt.Errorf("reservation journal: %w", err)
	}
	d.resvClient = c
	d.lup.journal = c.Reservations()
	return nil
}

// closeReservations ends the journal's connection once the LUs are closed.
func (d *Daemon) closeReservations() {
	if d.resvClient != nil {
		_ = d.resvClient.Close()
	}
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
