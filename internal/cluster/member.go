package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// PortGroup is one of a node's target port groups with its relative port
// identifiers, as the other nodes report it in REPORT TARGET PORT GROUPS,
// and the iSCSI portals that listen for it (none for an FC group).
type PortGroup struct {
	ID      uint16   `json:"id"`
	Ports   []uint16 `json:"ports"`
	Portals []string `json:"portals,omitempty"`
}

// Equal reports whether g and o are the same group with the same ports
// and portals.
func (g PortGroup) Equal(o PortGroup) bool {
	return g.ID == o.ID && slices.Equal(g.Ports, o.Ports) && slices.Equal(g.Portals, o.Portals)
}

// Member is a node's record in etcd.
type Member struct {
	Name string `json:"name"`
	// Portals are the node's advertised iSCSI portals: stmfd's
	// --advertise-portal when set (addresses initiators reach it by, e.g.
	// through NAT), else every address its iSCSI portals listen on.
	Portals []string    `json:"portals"`
	Groups  []PortGroup `json:"groups"`
	Health  string      `json:"health"` // "ok", or what is wrong
	Started time.Time   `json:"started"`
	// LeaseTTL is the seconds left on the member's lease when read
	// (filled by Members, not stored).
	LeaseTTL int64 `json:"lease_ttl,omitempty"`
}

// Membership keeps this node's record alive under a session lease, and
// puts it back after the lease is lost (etcd outage longer than the TTL).
type Membership struct {
	c      *Client
	mu     sync.Mutex
	m      Member
	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// Join publishes m (its Name is the node's) and keeps it published until
// Leave. It returns once the record is in etcd the first time.
func (c *Client) Join(ctx context.Context, m Member) (*Membership, error) {
	m.Name = c.cfg.Node
	if m.Health == "" {
		m.Health = "ok"
	}
	if m.Started.IsZero() {
		m.Started = time.Now().UTC()
	}
	if err := c.CheckGroups(ctx, m.Groups); err != nil {
		return nil, err
	}
	ms := &Membership{c: c, m: m, kick: make(chan struct{}, 1), done: make(chan struct{})}
	lease, ka, err := ms.publish(ctx)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ms.cancel = cancel
	go ms.run(rctx, lease, ka)
	return ms, nil
}

// CheckGroups refuses target port group ids or relative port ids another
// live node already uses: initiators tell paths apart by them.
func (c *Client) CheckGroups(ctx context.Context, mine []PortGroup) error {
	others, err := c.Members(ctx)
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.Name == c.cfg.Node {
			continue
		}
		for _, og := range o.Groups {
			for _, g := range mine {
				if g.ID == og.ID {
					return fmt.Errorf("cluster: target port group %d is already node %s's; give each node its own group ids", g.ID, o.Name)
				}
				for _, p := range g.Ports {
					for _, op := range og.Ports {
						if p == op {
							return fmt.Errorf("cluster: relative port id %d is already node %s's; give each node its own port id base", p, o.Name)
						}
					}
				}
			}
		}
	}
	return nil
}

func (ms *Membership) publish(ctx context.Context) (clientv3.LeaseID, <-chan *clientv3.LeaseKeepAliveResponse, error) {
	c := ms.c
	g, err := c.cli.Grant(leaderCtx(ctx), c.ttlSeconds())
	if err != nil {
		return 0, nil, fmt.Errorf("cluster: membership lease: %w", err)
	}
	ms.mu.Lock()
	val, _ := json.Marshal(ms.m)
	ms.mu.Unlock()
	if _, err := c.cli.Put(leaderCtx(ctx), c.cfg.nodeKey(c.cfg.Node), string(val), clientv3.WithLease(g.ID)); err != nil {
		return 0, nil, fmt.Errorf("cluster: publishing node %s: %w", c.cfg.Node, err)
	}
	ka, err := c.cli.KeepAlive(context.WithoutCancel(ctx), g.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("cluster: membership keep-alive: %w", err)
	}
	return g.ID, ka, nil
}

func (ms *Membership) run(ctx context.Context, lease clientv3.LeaseID, ka <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(ms.done)
	c := ms.c
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = c.cli.Revoke(rctx, lease)
			cancel()
			return
		case <-ms.kick:
			ms.mu.Lock()
			val, _ := json.Marshal(ms.m)
			ms.mu.Unlock()
			if _, err := c.cli.Put(leaderCtx(ctx), c.cfg.nodeKey(c.cfg.Node), string(val), clientv3.WithLease(lease)); err != nil {
				c.log.Warn("cluster: updating the node record", "err", err)
			}
		case _, ok := <-ka:
			if ok {
				continue
			}
			// The keep-alive gave up: the lease is gone or etcd is
			// unreachable. Publish again once etcd answers.
			c.log.Warn("cluster: membership lease lost; joining again")
			for {
				if !pause(ctx, c.cfg.Renew) {
					break
				}
				var err error
				if lease, ka, err = ms.publish(ctx); err == nil {
					c.log.Info("cluster: membership restored")
					break
				}
			}
		}
	}
}

// SetHealth changes the health this node reports.
func (ms *Membership) SetHealth(h string) { ms.update(func(m *Member) { m.Health = h }) }

// SetGroups changes the port groups this node advertises (its targets or
// portal groups changed).
func (ms *Membership) SetGroups(g []PortGroup) {
	ms.update(func(m *Member) { m.Groups = slices.Clone(g) })
}

// SetPortals changes the portals this node advertises.
func (ms *Membership) SetPortals(p []string) {
	ms.update(func(m *Member) { m.Portals = slices.Clone(p) })
}

// update changes the record and has the run loop publish it.
func (ms *Membership) update(f func(*Member)) {
	ms.mu.Lock()
	f(&ms.m)
	ms.mu.Unlock()
	select {
	case ms.kick <- struct{}{}:
	default:
	}
}

// Leave removes the node's record and stops keeping it.
func (ms *Membership) Leave() {
	ms.cancel()
	<-ms.done
}

// Members lists the live nodes, sorted by name, with their lease's TTL.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	resp, err := c.cli.Get(leaderCtx(ctx), c.cfg.nodesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("cluster: listing members: %w", err)
	}
	out := make([]Member, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var m Member
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			c.log.Warn("cluster: unreadable member record", "key", string(kv.Key), "err", err)
			continue
		}
		m.Name = strings.TrimPrefix(string(kv.Key), c.cfg.nodesPrefix())
		if kv.Lease != 0 {
			if t, err := c.cli.TimeToLive(leaderCtx(ctx), clientv3.LeaseID(kv.Lease)); err == nil {
				m.LeaseTTL = t.TTL
			}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
