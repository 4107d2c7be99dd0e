package store

import (
	"encoding/json"
	"fmt"
)

// decode parses a stored document of any version this stmfd knows and
// returns it in the current layout.
func decode(b []byte) (*State, error) {
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("corrupt: %w", err)
	}
	var st *State
	switch {
	case v.Version > Version:
		return nil, fmt.Errorf("version %d is newer than this stmfd (%d)", v.Version, Version)
	case v.Version <= 1:
		var old stateV1
		if err := json.Unmarshal(b, &old); err != nil {
			return nil, fmt.Errorf("corrupt: %w", err)
		}
		st = old.migrate()
	default:
		st = &State{}
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("corrupt: %w", err)
		}
	}
	for i := range st.Targets {
		if st.Targets[i].Protocol == "" {
			st.Targets[i].Protocol = ProtocolISCSI
		}
	}
	return st, nil
}

// stateV1 is the version 1 document (iSCSI only):
// targets were iSCSI records, and portal groups, initiators and defaults
// sat at the top level. Fields it shares with State are read through the
// embedded State; the outer ones shadow the keys whose shape changed.
type stateV1 struct {
	State
	Targets    []targetV1  `json:"targets"`
	TPGs       []TPG       `json:"tpgs"`
	Initiators []Initiator `json:"initiators"`
	Defaults   Defaults    `json:"defaults"`
}

type targetV1 struct {
	Name       string `json:"name"`
	Alias      string `json:"alias,omitempty"`
	TPGTs      []TPGT `json:"tpgts,omitempty"`
	Auth       string `json:"auth,omitempty"`
	ChapUser   string `json:"chap_user,omitempty"`
	ChapSecret string `json:"chap_secret,omitempty"`
	Offline    bool   `json:"offline,omitempty"`
}

// migrate moves the iSCSI settings into their own sections.
func (o *stateV1) migrate() *State {
	st := o.State
	st.Version = Version
	st.Targets = nil
	for _, t := range o.Targets {
		st.Targets = append(st.Targets, Target{
			Name: t.Name, Protocol: ProtocolISCSI, Alias: t.Alias, Offline: t.Offline,
			ISCSI: ISCSITarget{TPGTs: t.TPGTs, Auth: t.Auth, ChapUser: t.ChapUser, ChapSecret: t.ChapSecret},
		})
	}
	st.ISCSI = ISCSI{TPGs: o.TPGs, Initiators: o.Initiators, Defaults: o.Defaults}
	return &st
}
