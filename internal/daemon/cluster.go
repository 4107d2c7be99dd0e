package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/cluster"
	"github.com/costar-project/costar/lu"
	"github.com/costar-project/costar/stmf"
)

// Cluster mode: this node campaigns for every online LU; the LU's owner
// serves it (its port groups active/optimized), the other nodes answer
// standby. The glue between internal/cluster (etcd) and stmf's per-LU
// access states; README "Cluster (etcd)".

type clusterNode struct {
	d   *Daemon
	cfg config.ClusterConfig
	c   *cluster.Client
	ms  *cluster.Membership
	log *slog.Logger

	runHook hookRunner // takeover and release hooks (cluster_hooks.go)

	cancel   context.CancelFunc
	done     chan struct{}
	wake     chan struct{}
	watchers sync.WaitGroup // the configuration watch (cluster_config.go)

	mu      sync.Mutex
	owners  map[string]*cluster.Owner // campaigns, by GUID
	serving map[string]int64          // LUs this node serves -> fencing token
	members []cluster.Member          // as last read
	ownerOf map[string]cluster.OwnerInfo
}

// prepareCluster runs in New: relative port ids from the node's range, and
// every LU standby until this node owns it.
func (d *Daemon) prepareCluster() {
	if !d.cfg.Cluster.Enabled() {
		return
	}
	d.fw.SetRelativePortIDBase(uint16(d.cfg.Cluster.NodeID) * 256)
	d.fw.SetLUAccessDefault(&stmf.LUAccess{Local: stmf.ALUAStandby})
}

// startCluster joins the cluster once the portals are open (their port
// groups are known) and before the management API serves.
func (d *Daemon) startCluster(ctx context.Context) error {
	cc := d.cfg.Cluster
	if !cc.Enabled() {
		return nil
	}
	log := d.log.With("component", "cluster")
	c, err := cluster.New(ctx, cluster.Config{Endpoints: cc.Endpoints, Node: cc.Node, Prefix: cc.Prefix, TTL: cc.LeaseTTL}, log)
	if err != nil {
		return err
	}
	n := &clusterNode{d: d, cfg: cc, c: c, log: log, done: make(chan struct{}), wake: make(chan struct{}, 1),
		owners: map[string]*cluster.Owner{}, serving: map[string]int64{}, ownerOf: map[string]cluster.OwnerInfo{}}
	n.runHook = d.hookRunnerOf(log, cc.HookTimeout) // cluster_hooks.go
	ms, err := c.Join(ctx, cluster.Member{Portals: n.advertised(), Groups: n.localGroups()})
	if err != nil {
		_ = c.Close()
		return err
	}
	n.ms = ms
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	d.cluster = n
	d.mgr.SetCluster(n)
	if err := n.startConfigSync(rctx, d.cstore); err != nil { // cluster_config.go
		cancel()
		n.watchers.Wait()
		ms.Leave()
		_ = c.Close()
		d.cluster = nil
		return err
	}
	go n.run(rctx)
	log.Info("joined the cluster", "node", cc.Node, "endpoints", cc.Endpoints, "lease_ttl", c.Config().TTL)
	return nil
}

// stopCluster gives every LU up at once (the next owner need not wait
// for the TTL) and leaves.
func (n *clusterNode) stop() {
	n.cancel()
	<-n.done
	n.watchers.Wait() // no apply runs while the manager closes
	n.mu.Lock()
	owners := slices.Collect(maps.Values(n.owners))
	n.owners = map[string]*cluster.Owner{}
	n.mu.Unlock()
	// Every LU at once: each Close drains its LU and runs its release
	// hook, and a shutdown should take the longest of them, not the sum.
	var wg sync.WaitGroup
	for _, o := range owners {
		wg.Go(o.Close)
	}
	wg.Wait()
	n.ms.Leave()
	_ = n.c.Close()
}

// localGroups are this node's target port groups with their relative
// port ids and the iSCSI portals that really listen for each (portal
// groups itadm creates later open listeners live; the run loop re-sends
// the groups when they change).
func (n *clusterNode) localGroups() []cluster.PortGroup {
	var portals map[uint16][]string
	if n.d.iscsi != nil {
		portals = n.d.iscsi.GroupPortals()
	}
	var out []cluster.PortGroup
	for id, ports := range n.d.fw.PortGroups() {
		out = append(out, cluster.PortGroup{ID: id, Ports: ports, Portals: portals[id]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// advertised are the portals the node record names: --advertise-portal as
// given (what initiators reach the node by, which the node cannot tell
// behind NAT), else every address an iSCSI portal listens on now.
func (n *clusterNode) advertised() []string {
	if len(n.cfg.Portals) > 0 {
		return n.cfg.Portals
	}
	return n.d.Addrs()
}

// poke asks the loop for a refresh now.
func (n *clusterNode) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run keeps the campaigns in line with the configured LUs and refreshes
// the cluster view (members, owners) the ALUA states are built from.
func (n *clusterNode) run(ctx context.Context) {
	defer close(n.done)
	t := time.NewTicker(n.c.Config().Renew)
	defer t.Stop()
	var groups []cluster.PortGroup // nil: the first pass re-sends what changed since Join
	var portals []string
	for {
		n.syncLUs(ctx)
		if p := n.advertised(); !slices.Equal(p, portals) {
			portals = p
			n.ms.SetPortals(p)
		}
		if g := n.localGroups(); !slices.EqualFunc(g, groups, cluster.PortGroup.Equal) {
			groups = g
			n.ms.SetGroups(g)
			cctx, cancel := context.WithTimeout(ctx, n.c.Config().Renew)
			if err := n.c.CheckGroups(cctx, g); err != nil {
				// A portal group tag another node uses: RTPG would mix the
				// two nodes' paths up. Say so where list-cluster shows it.
				n.log.Error("target port groups clash with another node's", "err", err)
				n.ms.SetHealth(err.Error())
			} else {
				n.ms.SetHealth("ok") // a clash, if any, is resolved
			}
			cancel()
		}
		n.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.wake:
		}
	}
}

// syncLUs campaigns for every online LU and stops campaigning for the
// others.
func (n *clusterNode) syncLUs(ctx context.Context) {
	lus, err := n.d.mgr.ListLUs(ctx, api.Empty{})
	if err != nil {
		return
	}
	want := map[string]bool{}
	for _, l := range lus {
		if l.Status == "Online" && l.Available {
			want[l.GUID] = true
		}
	}
	for _, h := range n.d.mgr.HandoverLUs() {
		if n.waitingForZvol(h) { // cluster_hooks.go: the takeover hook imports its pool
			want[h.GUID] = true
		}
	}
	n.mu.Lock()
	var gone []*cluster.Owner
	for g, o := range n.owners {
		if !want[g] {
			gone = append(gone, o)
			delete(n.owners, g)
		}
	}
	for g := range want {
		if _, ok := n.owners[g]; !ok {
			n.owners[g] = n.c.Own(ctx, g, n)
		}
	}
	n.mu.Unlock()
	for _, o := range gone {
		o.Close()
	}
}

// refresh reads members and owners and applies every LU's access state.
func (n *clusterNode) refresh(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, n.c.Config().Renew)
	defer cancel()
	members, err := n.c.Members(rctx)
	if err != nil {
		n.log.Debug("cluster view not refreshed", "err", err)
		return
	}
	owners, err := n.c.OwnersBrief(rctx)
	if err != nil {
		n.log.Debug("cluster view not refreshed", "err", err)
		return
	}
	n.mu.Lock()
	n.members = members
	n.ownerOf = map[string]cluster.OwnerInfo{}
	for _, o := range owners {
		n.ownerOf[o.GUID] = o
	}
	guids := slices.Collect(maps.Keys(n.owners))
	n.mu.Unlock()
	for _, g := range guids {
		n.apply(g)
	}
}

// apply sets the LU's per-LU access state from what this node knows.
func (n *clusterNode) apply(guid string) {
	g, err := stmf.ParseGUID(guid)
	if err != nil {
		return
	}
	n.mu.Lock()
	a := n.accessLocked(guid)
	n.mu.Unlock()
	if err := n.d.fw.SetLUAccess(g, a); err != nil {
		n.log.Warn("setting the LU's access state", "lu", guid, "err", err)
	}
}

// accessLocked is the LU's state here: active/optimized only while this
// node serves it; the owner's groups active/optimized, every other
// node's standby.
func (n *clusterNode) accessLocked(guid string) *stmf.LUAccess {
	_, mine := n.serving[guid]
	owner := n.ownerOf[guid].Node
	a := &stmf.LUAccess{Local: stmf.ALUAStandby}
	if mine {
		a.Local, owner = stmf.ALUAActiveOptimized, n.cfg.Node
	}
	for _, m := range n.members {
		if m.Name == n.cfg.Node {
			continue
		}
		st := stmf.ALUAStandby
		if m.Name == owner {
			st = stmf.ALUAActiveOptimized
		}
		for _, pg := range m.Groups {
			a.Remote = append(a.Remote, stmf.RemoteGroup{ID: pg.ID, State: st, Ports: pg.Ports})
		}
	}
	return a
}

// Serve is cluster.Handler: this node won the LU. The LU is open on every
// node (shared backing store; with a takeover hook the hook runs first
// and a zvol LU is opened, cluster_hooks.go), so taking over is recording
// the fencing token with the LU (a deposed owner's late write is then refused by the
// store check, lu/fence.go), waiting out the window a deposed owner may
// still trust its last check for, and turning it active. An error gives
// the lease up.
func (n *clusterNode) Serve(ctx context.Context, guid string, token int64) error {
	if err := n.takeover(ctx, guid, token); err != nil { // cluster_hooks.go
		return err
	}
	if err := n.fence(ctx, guid, token); err != nil {
		return err
	}
	n.mu.Lock()
	n.serving[guid] = token
	n.mu.Unlock()
	n.apply(guid)
	n.log.Info("serving LU", "lu", guid, "fencing_token", token)
	n.poke()
	return nil
}

// fence records token with the LU's store (lu.Device.SetFence), then
// waits lu.FenceWindow so that the previous owner's last successful check
// has run out before this node serves its first write.
func (n *clusterNode) fence(ctx context.Context, guid string, token int64) error {
	g, err := stmf.ParseGUID(guid)
	if err != nil {
		return err
	}
	l, ok := n.d.fw.LU(g)
	if !ok {
		return nil // not registered here: nothing to serve or fence
	}
	f, ok := l.(interface{ SetFence(int64) error })
	if !ok {
		return nil
	}
	if err := f.SetFence(token); err != nil {
		return fmt.Errorf("recording fencing token %d: %w", token, err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(lu.FenceWindow):
		return nil
	}
}

// Stop is cluster.Handler: standby first (no new media command starts),
// then wait for the commands in flight, bounded well inside the margin.
// The LU keeps its fencing token: a command still in flight past the
// drain (or one a frozen process resumes) is checked against the store
// and refused once another node recorded a newer token; with the token
// cleared it would write unchecked. While no other node took over, the
// check passes, which is right: nobody else writes.
func (n *clusterNode) Stop(guid, reason string) {
	n.mu.Lock()
	delete(n.serving, guid)
	if oi, ok := n.ownerOf[guid]; ok && oi.Node == n.cfg.Node {
		delete(n.ownerOf, guid)
	}
	n.mu.Unlock()
	n.apply(guid)
	g, err := stmf.ParseGUID(guid)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), n.c.Config().Margin/2)
		if left := n.d.fw.DrainLU(ctx, g); left > 0 {
			n.log.Warn("LU given up with commands still running", "lu", guid, "tasks", left)
		}
		cancel()
		// Write back what this node wrote: the next owner may be another
		// host, reading the shared device past this host's page cache.
		if l, ok := n.d.fw.LU(g); ok {
			if f, ok := l.(interface{ Flush() error }); ok {
				if err := f.Flush(); err != nil {
					n.log.Error("LU given up without its writes made stable", "lu", guid, "err", err)
				}
			}
		}
	}
	n.log.Info("stopped serving LU", "lu", guid, "reason", reason)
	n.poke()
}

// Status is mgmt.Cluster (list-cluster).
func (n *clusterNode) Status(ctx context.Context) (api.ClusterStatus, error) {
	cfg := n.c.Config()
	st := api.ClusterStatus{Node: cfg.Node, Endpoints: cfg.Endpoints, LeaseTTL: cfg.TTL.Seconds(),
		RenewEvery: cfg.Renew.Seconds(), FenceMargin: cfg.Margin.Seconds(), EtcdHealthy: true,
		Members: []api.ClusterMember{}, LUs: []api.ClusterLU{}}
	rctx, cancel := context.WithTimeout(ctx, cfg.TTL)
	defer cancel()
	members, err := n.c.Members(rctx)
	if err == nil {
		var owners []cluster.OwnerInfo
		if owners, err = n.c.Owners(rctx); err == nil {
			n.mu.Lock()
			n.members = members
			n.ownerOf = map[string]cluster.OwnerInfo{}
			for _, o := range owners {
				n.ownerOf[o.GUID] = o
			}
			n.mu.Unlock()
		}
	}
	if err != nil {
		st.EtcdHealthy, st.EtcdProblem = false, err.Error()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.members {
		am := api.ClusterMember{Name: m.Name, Self: m.Name == cfg.Node, Portals: m.Portals, Health: m.Health, Started: m.Started, LeaseTTL: m.LeaseTTL}
		for _, g := range m.Groups {
			am.Groups = append(am.Groups, api.ClusterPortGroup{ID: g.ID, Ports: g.Ports, Portals: g.Portals})
		}
		st.Members = append(st.Members, am)
	}
	guids := slices.Sorted(maps.Keys(n.owners))
	for g := range n.ownerOf {
		if _, ok := n.owners[g]; !ok {
			guids = append(guids, g)
		}
	}
	for _, g := range guids {
		st.LUs = append(st.LUs, api.ClusterLU{GUID: g, LUCluster: *n.luLocked(g)})
	}
	return st, nil
}

// LU is mgmt.Cluster (list-lu -v), from the last refresh.
func (n *clusterNode) LU(guid string) *api.LUCluster {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.luLocked(guid)
}

func (n *clusterNode) luLocked(guid string) *api.LUCluster {
	oi := n.ownerOf[guid]
	out := &api.LUCluster{Owner: oi.Node, Token: oi.Token, LeaseTTL: oi.LeaseTTL, MovingTo: oi.MovingTo, States: []api.ClusterNodeState{}}
	if tok, ok := n.serving[guid]; ok {
		out.Owner, out.Token = n.cfg.Node, tok
	}
	a := n.accessLocked(guid)
	for id := range n.d.fw.PortGroups() {
		out.States = append(out.States, api.ClusterNodeState{Node: n.cfg.Node, Group: id, State: apiState(a.Local)})
	}
	for _, m := range n.members {
		if m.Name == n.cfg.Node {
			continue
		}
		for _, pg := range m.Groups {
			for _, r := range a.Remote {
				if r.ID == pg.ID {
					out.States = append(out.States, api.ClusterNodeState{Node: m.Name, Group: pg.ID, State: apiState(r.State)})
					break
				}
			}
		}
	}
	sort.Slice(out.States, func(i, j int) bool {
		if out.States[i].Node != out.States[j].Node {
			return out.States[i].Node < out.States[j].Node
		}
		return out.States[i].Group < out.States[j].Group
	})
	return out
}

func apiState(s stmf.ALUAState) string {
	if s == stmf.ALUAActiveOptimized {
		return api.ALUAActiveOptimized
	}
	return api.ALUAStandby
}

// MoveLU is mgmt.Cluster (move-lu): bounded by a few TTLs.
func (n *clusterNode) MoveLU(ctx context.Context, guid, node string) (api.ClusterLU, error) {
	mctx, cancel := context.WithTimeout(ctx, 3*n.c.Config().TTL)
	defer cancel()
	if err := n.c.Move(mctx, guid, node); err != nil {
		code := api.CodeClusterError
		if cluster.IsNoSuchNode(err) {
			code = api.CodeNoSuchNode
		}
		return api.ClusterLU{}, api.Errorf(code, node, "%v", err)
	}
	n.refresh(ctx)
	n.mu.Lock()
	defer n.mu.Unlock()
	return api.ClusterLU{GUID: guid, LUCluster: *n.luLocked(guid)}, nil
}
