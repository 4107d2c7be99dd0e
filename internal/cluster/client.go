package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Client is one node's connection to the cluster.
type Client struct {
	cfg Config
	cli *clientv3.Client
	log *slog.Logger
}

// New connects to etcd and checks that it answers.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    cfg.TTL / 2,
		DialKeepAliveTimeout: cfg.TTL / 2,
		Logger:               zap.NewNop(), // errors reach our log through the calls' results
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to etcd %v: %w", cfg.Endpoints, err)
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(cctx, cfg.Prefix, clientv3.WithCountOnly()); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("cluster: etcd %v does not answer: %w", cfg.Endpoints, err)
	}
	return &Client{cfg: cfg, cli: cli, log: log}, nil
}

// Config returns the effective settings (defaults filled in).
func (c *Client) Config() Config { return c.cfg }

// Node is this node's name.
func (c *Client) Node() string { return c.cfg.Node }

// Close ends the connection; leases it held expire after their TTL.
func (c *Client) Close() error { return c.cli.Close() }

// ttlSeconds is the lease TTL as etcd takes it.
func (c *Client) ttlSeconds() int64 { return int64(c.cfg.TTL / time.Second) }

// leaderCtx makes etcd calls fail fast when the member this client talks to
// has lost its leader (a minority partition), instead of waiting.
func leaderCtx(ctx context.Context) context.Context { return clientv3.WithRequireLeader(ctx) }

// pause waits d or until ctx ends; it reports false when ctx ended.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
