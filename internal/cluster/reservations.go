package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/costar-project/costar/lu"
	"github.com/costar-project/costar/stmf"
)

// DefaultReservationPrefix is where the reservation states live: one key
// per LU, the prefix followed by the LU's GUID (the cluster's key prefix,
// "/costar/" by default, then "reservations/").
const DefaultReservationPrefix = "/costar/reservations/"

// Watch retry bounds: a broken watch is re-established after a pause that
// doubles from the first to the second.
const (
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// Reservations is the etcd lu.ReservationJournal. A commit is a
// transaction that writes only if the key's mod revision is still the one
// the committing node last saw, so two nodes changing the same LU's
// reservations never lose one of the changes: the later one fails with
// lu.ErrJournalStale and is redone on the newer state.
type Reservations struct {
	cli    *clientv3.Client
	prefix string
	log    *slog.Logger
}

// NewReservationJournal is the journal over cli under prefix ("" means
// DefaultReservationPrefix). A node wires it into every LU it opens:
// dev.ReplicateReservations(ctx, journal).
func NewReservationJournal(cli *clientv3.Client, prefix string, log *slog.Logger) *Reservations {
	if prefix == "" {
		prefix = DefaultReservationPrefix
	}
	if log == nil {
		log = slog.Default()
	}
	return &Reservations{cli: cli, prefix: prefix, log: log}
}

var _ lu.ReservationJournal = (*Reservations)(nil)

// Key is the etcd key of an LU's reservation state.
func (r *Reservations) Key(guid stmf.GUID) string { return r.prefix + guid.String() }

// Commit implements lu.ReservationJournal.
func (r *Reservations) Commit(ctx context.Context, guid stmf.GUID, state []byte, prev int64) (int64, error) {
	key := r.Key(guid)
	resp, err := r.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", prev)).
		Then(clientv3.OpPut(key, string(state))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("cluster: committing the reservations of %s: %w", guid, err)
	}
	if !resp.Succeeded {
		var cur lu.JournalEntry
		if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
			cur = lu.JournalEntry{State: rr.Kvs[0].Value, Rev: rr.Kvs[0].ModRevision}
		}
		return 0, fmt.Errorf("cluster: reservations of %s at revision %d, this node had %d: %w", guid, cur.Rev, prev, &lu.StaleError{Current: cur})
	}
	return resp.Header.Revision, nil
}

// Load implements lu.ReservationJournal.
func (r *Reservations) Load(ctx context.Context, guid stmf.GUID) (lu.JournalEntry, error) {
	resp, err := r.cli.Get(ctx, r.Key(guid))
	if err != nil {
		return lu.JournalEntry{}, fmt.Errorf("cluster: loading the reservations of %s: %w", guid, err)
	}
	if len(resp.Kvs) == 0 {
		return lu.JournalEntry{}, nil
	}
	kv := resp.Kvs[0]
	return lu.JournalEntry{State: kv.Value, Rev: kv.ModRevision}, nil
}

// Delete removes an LU's reservation state (the LU is deleted). Devices
// still watching it see an empty state.
func (r *Reservations) Delete(ctx context.Context, guid stmf.GUID) error {
	if _, err := r.cli.Delete(ctx, r.Key(guid)); err != nil {
		return fmt.Errorf("cluster: deleting the reservations of %s: %w", guid, err)
	}
	return nil
}

// Watch implements lu.ReservationJournal. A broken watch is re-established
// from the last revision delivered; when etcd compacted the revisions in
// between, the current state is loaded and delivered instead.
func (r *Reservations) Watch(ctx context.Context, guid stmf.GUID, after int64) <-chan lu.JournalEntry {
	out := make(chan lu.JournalEntry)
	go func() {
		defer close(out)
		w := watcher{r: r, guid: guid, out: out, last: after, from: after + 1}
		pause := watchRetryMin
		for ctx.Err() == nil {
			if w.once(ctx) {
				pause = watchRetryMin
			}
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
			pause = min(2*pause, watchRetryMax)
		}
	}()
	return out
}

// watcher is one Watch's progress.
type watcher struct {
	r    *Reservations
	guid stmf.GUID
	out  chan<- lu.JournalEntry
	last int64 // the revision last delivered
	from int64 // where the next etcd watch starts
}

// once runs one etcd watch until it breaks; progress reports whether it
// delivered anything.
func (w *watcher) once(ctx context.Context) (progress bool) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range w.r.cli.Watch(wctx, w.r.Key(w.guid), clientv3.WithRev(w.from)) {
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			if !w.resync(ctx, resp.CompactRevision) {
				return progress
			}
			return true // watch again from the compaction point
		}
		if err := resp.Err(); err != nil {
			w.r.log.Warn("cluster: reservation watch broken", "guid", w.guid, "err", err)
			return progress
		}
		for _, ev := range resp.Events {
			e := lu.JournalEntry{Rev: ev.Kv.ModRevision}
			if ev.Type == clientv3.EventTypePut {
				e.State = ev.Kv.Value
			}
			if !w.deliver(ctx, e) {
				return progress
			}
			progress = true
		}
	}
	return progress
}

// resync delivers the current state after a compaction and moves the
// watch's start past it.
func (w *watcher) resync(ctx context.Context, compacted int64) bool {
	lctx, cancel := context.WithTimeout(ctx, watchRetryMax)
	defer cancel()
	e, err := w.r.Load(lctx, w.guid)
	if err != nil {
		w.r.log.Warn("cluster: reloading compacted reservations", "guid", w.guid, "err", err)
		return false
	}
	if !w.deliver(ctx, e) {
		return false
	}
	w.from = max(w.from, compacted, w.last+1)
	return true
}

// deliver hands on e unless it is not newer than what was delivered.
func (w *watcher) deliver(ctx context.Context, e lu.JournalEntry) bool {
	if e.Rev <= w.last {
		return true
	}
	select {
	case w.out <- e:
		w.last = e.Rev
		w.from = e.Rev + 1
		return true
	case <-ctx.Done():
		return false
	}
}

// Reservations is the node's reservation journal, under the cluster's key
// prefix ("reservations/<GUID>").
func (c *Client) Reservations() *Reservations {
	return NewReservationJournal(c.cli, c.cfg.Prefix+"reservations/", c.log)
}
