package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/cluster"
	"github.com/costar-project/costar/internal/store"
)

// The cluster-wide part of the configuration lives in etcd: LUs (where
// their data is; their properties live with the data), views, host groups
// and target groups. Targets, portal groups, ALUA group states, initiators'
// CHAP and the defaults stay per node (portals are per node). A change on
// any node is an etcd Txn conditioned on the revision that node last read,
// made before the change is adopted: if another node changed the
// configuration in between, the command fails and changes nothing. Every
// node watches the document and applies a new version through the
// declarative apply path (the single verbs, UAs only where a map changed).

// sharedConfig is the document in etcd.
type sharedConfig struct {
	LUs          []store.LU    `json:"lus"`
	Views        []store.View  `json:"views"`
	HostGroups   []store.Group `json:"host_groups"`
	TargetGroups []store.Group `json:"target_groups"`
}

func sharedOf(st *store.State) sharedConfig {
	c := st.Clone()
	return sharedConfig{LUs: nonNil(c.LUs), Views: nonNil(c.Views), HostGroups: nonNil(c.HostGroups), TargetGroups: nonNil(c.TargetGroups)}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// clusterStore is mgmt.Store in cluster mode: the shared part goes to etcd
// (conditioned on the revision read), then the whole state to the local
// file as in single-node mode.
type clusterStore struct {
	local *store.Store

	mu  sync.Mutex
	c   *cluster.Client // nil until the node joined
	rev int64           // revision of the document this node last read or wrote
	doc []byte          // that document
}

func (s *clusterStore) Save(st *store.State) error {
	s.mu.Lock()
	c := s.c
	if c != nil {
		doc, err := json.Marshal(sharedOf(st))
		if err != nil {
			s.mu.Unlock()
			return err
		}
		if !bytes.Equal(doc, s.doc) {
			ctx, cancel := context.WithTimeout(context.Background(), c.Config().TTL)
			rev, err := c.PutConfig(ctx, doc, s.rev)
			cancel()
			if err != nil {
				s.mu.Unlock()
				return err
			}
			s.rev, s.doc = rev, doc
		}
	}
	s.mu.Unlock()
	return s.local.Save(st)
}

// startConfigSync brings this node's shared configuration in line with
// etcd's (or publishes it when etcd has none yet) and follows it.
func (n *clusterNode) startConfigSync(ctx context.Context, cs *clusterStore) error {
	doc, rev, err := n.c.GetConfig(ctx)
	if err != nil {
		return err
	}
	cs.mu.Lock()
	cs.c = n.c
	cs.rev, cs.doc = rev, doc
	cs.mu.Unlock()
	if rev == 0 {
		// The first node: its configuration becomes the cluster's.
		cur, err := n.d.store.Load()
		if err != nil {
			return err
		}
		if err := cs.Save(cur); err != nil && !errors.Is(err, cluster.ErrConfigChanged) {
			return err
		}
	} else if err := n.applyShared(ctx, cs, doc, rev); err != nil {
		n.log.Error("the cluster's configuration could not be applied here", "revision", rev, "err", err)
	}
	cs.mu.Lock()
	from := cs.rev
	cs.mu.Unlock()
	n.watchers.Add(1)
	go func() {
		defer n.watchers.Done()
		n.followConfig(ctx, cs, from)
	}()
	return nil
}

// followConfig applies every version of the document other nodes write.
func (n *clusterNode) followConfig(ctx context.Context, cs *clusterStore, from int64) {
	n.c.WatchConfig(ctx, from, func(doc []byte, rev int64) {
		cs.mu.Lock()
		mine := rev <= cs.rev
		cs.mu.Unlock()
		if mine {
			return // this node wrote it (or already applied it)
		}
		if err := n.applyShared(ctx, cs, doc, rev); err != nil {
			n.log.Error("the cluster's configuration could not be applied here", "revision", rev, "err", err)
			n.ms.SetHealth(fmt.Sprintf("configuration revision %d not applied: %v", rev, err))
			return
		}
		n.ms.SetHealth("ok")
	})
}

// applyShared applies another node's document: this node's own part of
// the configuration (targets, portal groups, ...) with the shared part
// replaced, pruned, through ApplyConfig.
func (n *clusterNode) applyShared(ctx context.Context, cs *clusterStore, doc []byte, rev int64) error {
	var sc sharedConfig
	if err := json.Unmarshal(doc, &sc); err != nil {
		return fmt.Errorf("configuration document at revision %d: %w", rev, err)
	}
	var res api.ApplyResult
	err := n.d.mgr.Exclusive(func() error {
		cur, err := n.d.mgr.ExportConfig(ctx, api.Empty{})
		if err != nil {
			return err
		}
		want := wantShared(cur.Config, sc)
		// The Save the apply ends with then finds the document unchanged;
		// a local change after it is conditioned on this revision.
		cs.mu.Lock()
		prevRev, prevDoc := cs.rev, cs.doc
		cs.rev, cs.doc = rev, doc
		cs.mu.Unlock()
		res, err = n.d.mgr.ApplyConfig(ctx, api.ApplyRequest{Config: want, Prune: true})
		if err != nil {
			// Nothing was applied: a local change must still fail against
			// the newer document rather than overwrite it with this node's
			// older view.
			cs.mu.Lock()
			cs.rev, cs.doc = prevRev, prevDoc
			cs.mu.Unlock()
		}
		return err
	})
	if err != nil {
		return err
	}
	if len(res.Steps) > 0 {
		n.log.Info("applied the cluster's configuration", "revision", rev, "steps", res.Steps)
	}
	n.poke()
	return nil
}

// wantShared is this node's configuration cur with the shared part
// replaced by sc's.
func wantShared(cur api.Config, sc sharedConfig) api.Config {
	want := cur
	want.LUs = nil
	for _, l := range sc.LUs {
		i := slices.IndexFunc(cur.LUs, func(c api.ConfigLU) bool { return c.GUID == l.GUID })
		w := api.ConfigLU{GUID: l.GUID, DataFile: l.DataFile, MetaFile: l.MetaFile}
		if i >= 0 {
			w = cur.LUs[i] // keep the properties this node reads from the LU
		}
		w.Offline, w.QoSIOPS, w.QoSMBps = l.Offline, l.QoSIOPS, l.QoSMBps
		want.LUs = append(want.LUs, w)
	}
	want.Views = nil
	for _, v := range sc.Views {
		want.Views = append(want.Views, api.ConfigView{GUID: v.GUID, HostGroup: v.HostGroup, TargetGroup: v.TargetGroup, LUN: v.LUN})
	}
	want.HostGroups, want.TargetGroups = apiGroups(sc.HostGroups), apiGroups(sc.TargetGroups)
	return want
}

func apiGroups(gs []store.Group) []api.ConfigGroup {
	var out []api.ConfigGroup
	for _, g := range gs {
		out = append(out, api.ConfigGroup{Name: g.Name, Members: slices.Clone(g.Members)})
	}
	return out
}
