// Package store persists stmfd's configuration: LUs (by backing path),
// groups, views, targets of every protocol, ALUA states and the iSCSI
// port provider's own settings (portal groups, initiators, defaults).
//
// The whole configuration is one small JSON document replaced atomically:
// write a temp file, fsync it, rename it over the old one, fsync the
// directory. A change is on disk before Save returns, a kill -9 at any
// point leaves either the old or the new document, and a multi-object
// change (delete-lu removing its views) is one transaction. Configuration
// is kilobytes and changes are rare, so rewriting it whole is cheap.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Version of the on-disk document. Older versions are migrated on Load
// (migrate.go); Save always writes this one.
const Version = 2

// FileName is the document's name inside the state directory.
const FileName = "stmf.json"

// State is the persisted configuration.
type State struct {
	Version      int               `json:"version"`
	LUs          []LU              `json:"lus"`
	Views        []View            `json:"views"`
	HostGroups   []Group           `json:"host_groups"`
	TargetGroups []Group           `json:"target_groups"`
	Targets      []Target          `json:"targets"`
	ISCSI        ISCSI             `json:"iscsi"` // iscsi.go
	RelPortIDs   map[string]uint16 `json:"relative_port_ids,omitempty"`
	// ALUA holds the target port groups not in active/optimized (alua.go).
	ALUA []ALUAGroup `json:"alua,omitempty"`
}

// LU records where an LU's data (and metadata) live; its identity and
// properties are stored with the data itself and re-read on start.
type LU struct {
	GUID     string `json:"guid"`
	DataFile string `json:"data_file"`
	MetaFile string `json:"meta_file,omitempty"`
	Offline  bool   `json:"offline,omitempty"`
	// QoS limits (0 = unlimited): target policy, not a property of the
	// data, so they live here rather than in the LU's metadata.
	QoSIOPS uint64 `json:"qos_iops,omitempty"`
	QoSMBps uint64 `json:"qos_mbps,omitempty"` // MiB/s
}

// View is one view entry of an LU.
type View struct {
	GUID        string `json:"guid"`
	Entry       int    `json:"entry"`
	HostGroup   string `json:"host_group,omitempty"`   // "" = All
	TargetGroup string `json:"target_group,omitempty"` // "" = All
	LUN         int    `json:"lun"`
}

// Group is a host group or target group.
type Group struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// Target is a target of any protocol, served by the port provider
// registered for its Protocol.
type Target struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"` // port provider key: ProtocolISCSI, "fc"
	Alias    string `json:"alias,omitempty"`
	Offline  bool   `json:"offline,omitempty"`
	// ISCSI holds what only an iSCSI target has (iscsi.go).
	ISCSI ISCSITarget `json:"iscsi,omitzero"`
}

// Clone returns a deep copy of st, for building a changed state that is
// only adopted once it is saved.
func (st *State) Clone() *State {
	c := *st
	c.LUs = slices.Clone(st.LUs)
	c.Views = slices.Clone(st.Views)
	c.HostGroups = cloneGroups(st.HostGroups)
	c.TargetGroups = cloneGroups(st.TargetGroups)
	c.Targets = slices.Clone(st.Targets)
	for i := range c.Targets {
		c.Targets[i].ISCSI.TPGTs = slices.Clone(c.Targets[i].ISCSI.TPGTs)
	}
	c.ISCSI = st.ISCSI.clone()
	c.RelPortIDs = maps.Clone(st.RelPortIDs)
	c.ALUA = slices.Clone(st.ALUA)
	return &c
}

func cloneGroups(gs []Group) []Group {
	out := slices.Clone(gs)
	for i := range out {
		out[i].Members = slices.Clone(out[i].Members)
	}
	return out
}

// Store reads and writes State in one directory.
type Store struct {
	dir string
	mu  sync.Mutex
}

// Open prepares dir (created 0700 if missing) for use.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// Load returns the stored state, or an empty one when none exists yet.
func (s *Store) Load() (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(s.dir, FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Version: Version}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	st, err := decode(b) // migrate.go
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", filepath.Join(s.dir, FileName), err)
	}
	return st, nil
}

// Save replaces the stored state atomically and durably.
func (s *Store) Save(st *State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Version = Version
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return WriteFileAtomic(filepath.Join(s.dir, FileName), append(b, '\n'), 0o600)
}

// WriteFileAtomic writes data to path so that a crash leaves either the
// old or the new content: temp file, fsync, rename, fsync of the directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("store: writing %s: %w", tmp, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("store: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("store: fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: fsync %s: %w", dir, err)
	}
	return nil
}
