package cluster

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The cluster-wide configuration is one document under <prefix>config,
// written only by a Txn conditioned on the revision the writer last read
// (optimistic concurrency: a change made on another node in between makes
// the write fail, and the writer's change is not applied).

// ErrConfigChanged: the document changed since the revision the writer read.
var ErrConfigChanged = fmt.Errorf("cluster: the configuration changed on another node")

func (c Config) configKey() string { return c.Prefix + "config" }

// GetConfig returns the document and its mod revision (0: none yet).
func (c *Client) GetConfig(ctx context.Context) ([]byte, int64, error) {
	resp, err := c.cli.Get(leaderCtx(ctx), c.cfg.configKey())
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: reading the configuration: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// PutConfig writes doc if the document is still at revision rev (0: it
// must not exist yet) and returns the new revision.
func (c *Client) PutConfig(ctx context.Context, doc []byte, rev int64) (int64, error) {
	cmp := clientv3.Compare(clientv3.ModRevision(c.cfg.configKey()), "=", rev)
	if rev == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(c.cfg.configKey()), "=", 0)
	}
	resp, err := c.cli.Txn(leaderCtx(ctx)).If(cmp).Then(clientv3.OpPut(c.cfg.configKey(), string(doc))).Commit()
	if err != nil {
		return 0, fmt.Errorf("cluster: writing the configuration: %w", err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%w (read at revision %d); nothing was changed, try again", ErrConfigChanged, rev)
	}
	return resp.Header.Revision, nil
}

// WatchConfig calls fn with every new version of the document after
// revision from, until ctx ends; it re-watches after an etcd outage.
func (c *Client) WatchConfig(ctx context.Context, from int64, fn func(doc []byte, rev int64)) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(leaderCtx(ctx))
		for wr := range c.cli.Watch(wctx, c.cfg.configKey(), clientv3.WithRev(from+1)) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.PUT {
					fn(ev.Kv.Value, ev.Kv.ModRevision)
				}
				from = ev.Kv.ModRevision
			}
		}
		cancel()
		if !pause(ctx, c.cfg.Renew) {
			return
		}
		// Catch up with what changed while the watch was down.
		if doc, rev, err := c.GetConfig(ctx); err == nil && rev > from {
			fn(doc, rev)
			from = rev
		}
	}
}
