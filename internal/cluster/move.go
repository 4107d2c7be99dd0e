package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrNoSuchNode: a move names a node that is not a live member.
var ErrNoSuchNode = errors.New("cluster: not a live member")

// IsNoSuchNode reports whether err is ErrNoSuchNode.
func IsNoSuchNode(err error) bool { return errors.Is(err, ErrNoSuchNode) }

// Move is a planned switchover (stmfadm move-lu): it names node in the
// LU's move key; the owner drains and gives the lease up, and node, which
// alone may campaign while the key names it, takes the LU. Move returns
// once node serves the LU (its owner key says Serving: after the takeover
// hook, the fencing token and the journal) or ctx ends. The move key lives under a lease
// of twice the TTL, so a switchover nobody completes is forgotten.
func (c *Client) Move(ctx context.Context, guid, node string) error {
	members, err := c.Members(ctx)
	if err != nil {
		return err
	}
	found := false
	for _, m := range members {
		found = found || m.Name == node
	}
	if !found {
		return fmt.Errorf("%w: %q", ErrNoSuchNode, node)
	}
	cur, err := c.OwnerOf(ctx, guid)
	if err != nil {
		return err
	}
	if cur.Node == node {
		return nil
	}
	if cur.Node == "" {
		return fmt.Errorf("cluster: LU %s has no owner to move it from", guid)
	}
	g, err := c.cli.Grant(leaderCtx(ctx), 2*c.ttlSeconds())
	if err != nil {
		return fmt.Errorf("cluster: move lease: %w", err)
	}
	put, err := c.cli.Put(leaderCtx(ctx), c.cfg.moveKey(guid), node, clientv3.WithLease(g.ID))
	if err != nil {
		return fmt.Errorf("cluster: requesting the move: %w", err)
	}
	wctx, cancel := context.WithCancel(leaderCtx(ctx))
	defer cancel()
	wch := c.cli.Watch(wctx, c.cfg.ownerKey(guid), clientv3.WithRev(put.Header.Revision))
	for wr := range wch {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("cluster: watching the move: %w", err)
		}
		for _, ev := range wr.Events {
			var w Ownership
			if ev.Kv != nil && json.Unmarshal(ev.Kv.Value, &w) == nil && w.Node == node && w.Serving {
				return nil
			}
		}
	}
	return fmt.Errorf("cluster: LU %s did not move to %s: %w", guid, node, ctx.Err())
}

// OwnerInfo is an LU's owner as etcd has it.
type OwnerInfo struct {
	GUID     string    `json:"guid"`
	Node     string    `json:"node"` // "" when nobody owns it
	Since    time.Time `json:"since"`
	Token    int64     `json:"token"`
	Serving  bool      `json:"serving"`   // the owner finished taking over
	LeaseTTL int64     `json:"lease_ttl"` // seconds left on the owner's lease
	MovingTo string    `json:"moving_to,omitempty"`
}

// OwnerOf reads one LU's owner.
func (c *Client) OwnerOf(ctx context.Context, guid string) (OwnerInfo, error) {
	all, err := c.Owners(ctx)
	if err != nil {
		return OwnerInfo{}, err
	}
	for _, o := range all {
		if o.GUID == guid {
			return o, nil
		}
	}
	return OwnerInfo{GUID: guid}, nil
}

// Owners lists every owned LU (and pending switchovers) with the seconds
// left on each owner's lease (one more call per LU).
func (c *Client) Owners(ctx context.Context) ([]OwnerInfo, error) { return c.owners(ctx, true) }

// OwnersBrief is Owners without the leases' TTLs: one etcd call, for the
// periodic refresh of every node.
func (c *Client) OwnersBrief(ctx context.Context) ([]OwnerInfo, error) { return c.owners(ctx, false) }

func (c *Client) owners(ctx context.Context, withTTL bool) ([]OwnerInfo, error) {
	resp, err := c.cli.Txn(leaderCtx(ctx)).Then(
		clientv3.OpGet(c.cfg.ownersPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(c.cfg.Prefix+"move/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("cluster: listing owners: %w", err)
	}
	moves := map[string]string{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		moves[string(kv.Key)[len(c.cfg.Prefix+"move/"):]] = string(kv.Value)
	}
	var out []OwnerInfo
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var w Ownership
		_ = json.Unmarshal(kv.Value, &w)
		guid := string(kv.Key)[len(c.cfg.ownersPrefix()):]
		oi := OwnerInfo{GUID: guid, Node: w.Node, Since: w.Since, Token: kv.CreateRevision, Serving: w.Serving, MovingTo: moves[guid]}
		if withTTL {
			if t, err := c.cli.TimeToLive(leaderCtx(ctx), clientv3.LeaseID(kv.Lease)); err == nil {
				oi.LeaseTTL = t.TTL
			}
		}
		out = append(out, oi)
	}
	return out, nil
}
