// Package clustertest runs an embedded etcd cluster on loopback for tests
// (unit tests of internal/cluster and the integration harness). It is
// test-only: nothing the daemon links imports it.
package clustertest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Etcd is an n-member etcd cluster on 127.0.0.1.
type Etcd struct {
	mu        sync.Mutex
	cfgs      []*embed.Config
	members   []*embed.Etcd // nil: stopped
	Endpoints []string      // client URLs, one per member
}

// Start runs n members with their data under dir and waits (bounded) until
// they have a leader.
func Start(dir string, n int) (*Etcd, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	e := &Etcd{members: make([]*embed.Etcd, n)}
	var initial []string
	for i := 0; i < n; i++ {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[2*i+1]))
	}
	for i := 0; i < n; i++ {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(dir, cfg.Name)
		cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])}
		pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "costar-test"
		cfg.LogLevel = "fatal" // stopping members on purpose logs errors; start-up errors come back from StartEtcd
		cfg.LogOutputs = []string{"stderr"}
		e.cfgs = append(e.cfgs, cfg)
		e.Endpoints = append(e.Endpoints, cu.String())
	}
	errs := make(chan error, n)
	for i := range e.cfgs {
		go func() { errs <- e.startMember(i) }()
	}
	for range e.cfgs {
		if err := <-errs; err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

func (e *Etcd) startMember(i int) error {
	m, err := embed.StartEtcd(e.cfgs[i])
	if err != nil {
		return fmt.Errorf("clustertest: etcd member %d: %w", i, err)
	}
	select {
	case <-m.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		m.Close()
		return fmt.Errorf("clustertest: etcd member %d not ready in 30s", i)
	}
	e.mu.Lock()
	e.members[i] = m
	e.mu.Unlock()
	return nil
}

// Stop stops member i (its data stays for Restart).
func (e *Etcd) Stop(i int) {
	e.mu.Lock()
	m := e.members[i]
	e.members[i] = nil
	e.mu.Unlock()
	if m != nil {
		m.Close()
	}
}

// Restart starts a stopped member i again; it waits until the member has
// a leader, so the majority must be back.
func (e *Etcd) Restart(i int) error {
	e.cfgs[i].ClusterState = embed.ClusterStateFlagExisting
	return e.startMember(i)
}

// Close stops every member.
func (e *Etcd) Close() {
	for i := range e.members {
		e.Stop(i)
	}
}

// freePorts asks the kernel for n free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var out []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("clustertest: free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
