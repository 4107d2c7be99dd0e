package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/apitest"
)

func TestSetALUAStateCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
		sent   string // request body, "" = the daemon must not be asked
	}{
		{"api name", []string{"stmfadm", "set-alua-state", "-g", "2", "standby"}, exitOK, "", `{"tag":2,"state":"standby"}`},
		{"stmf name", []string{"stmfadm", "set-alua-state", "-g", "2", "active/non-optimized"}, exitOK, "", `{"tag":2,"state":"active-nonoptimized"}`},
		{"long option, upper case", []string{"stmfadm", "set-alua-state", "--group-name", "65535", "Active-Optimized"}, exitOK, "", `{"tag":65535,"state":"active-optimized"}`},
		{"bad state", []string{"stmfadm", "set-alua-state", "-g", "2", "standbyy"}, exitFail,
			"stmfadm: standbyy: invalid ALUA state (valid: active-optimized, active-nonoptimized, standby, unavailable, transitioning)\n", ""},
		{"tag zero", []string{"stmfadm", "set-alua-state", "-g", "0", "standby"}, exitFail,
			"stmfadm: 0: invalid target port group: a portal group tag, 1-65535, is expected\n", ""},
		{"tag too big", []string{"stmfadm", "set-alua-state", "-g", "65536", "standby"}, exitFail,
			"stmfadm: 65536: invalid target port group: a portal group tag, 1-65535, is expected\n", ""},
		{"tag not a number", []string{"stmfadm", "set-alua-state", "-g", "fast", "standby"}, exitFail,
			"stmfadm: fast: invalid target port group: a portal group tag, 1-65535, is expected\n", ""},
		{"no -g", []string{"stmfadm", "set-alua-state", "standby"}, exitUsage,
			"stmfadm: set-alua-state: -g, --group-name is required (the target port group tag)\n", ""},
		{"no state", []string{"stmfadm", "set-alua-state", "-g", "2"}, exitUsage,
			"stmfadm: set-alua-state: one operand required: state\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := apitest.Serve(t, map[string]apitest.Reply{api.MethodSetALUAState: {Body: api.ALUAGroup{Tag: 2, State: "standby", Targets: []string{}}}})
			code, stdout, stderr := runCLI(t, srv.Socket, tc.args...)
			if code != tc.code || stderr != tc.stderr || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q", code, stdout, stderr, tc.code, tc.stderr)
			}
			calls := srv.Calls()
			switch {
			case tc.sent == "" && len(calls) != 0:
				t.Errorf("the daemon was asked: %+v", calls)
			case tc.sent != "" && (len(calls) != 1 || calls[0].Method != api.MethodSetALUAState || strings.TrimSpace(calls[0].Body) != tc.sent):
				t.Errorf("calls %+v, want one %s %s", calls, api.MethodSetALUAState, tc.sent)
			}
		})
	}
}

func TestSetALUAStateErrors(t *testing.T) {
	for _, tc := range []struct {
		err    *api.Error
		stderr string
	}{
		{&api.Error{Code: api.CodeTPGTagNotFound, Message: "no target is bound to a portal group with this tag"},
			"stmfadm: 7: target port group not found\nstmfadm: detail: no target is bound to a portal group with this tag\n"},
		{&api.Error{Code: api.CodeInternal, Message: "saving the configuration: disk full"},
			"stmfadm: 7: unknown error: saving the configuration: disk full\n"},
	} {
		srv := apitest.Serve(t, map[string]apitest.Reply{api.MethodSetALUAState: {Err: tc.err}})
		code, stdout, stderr := runCLI(t, srv.Socket, "stmfadm", "set-alua-state", "-g", "7", "standby")
		if code != exitFail || stdout != "" || stderr != tc.stderr {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d %q", tc.err.Code, code, stdout, stderr, exitFail, tc.stderr)
		}
	}
}

func TestListStateShowsTargetPortGroups(t *testing.T) {
	st := api.State{Operational: "online", Config: "initialized", ALUA: "disabled", Portals: []string{"127.0.0.1:3260"},
		TargetPortGroups: []api.ALUAGroup{
			{Tag: 1, State: api.ALUAActiveOptimized, Targets: []string{"iqn.t"}},
			{Tag: 2, State: api.ALUAActiveNonOptimized, Targets: []string{}},
			{Tag: 3, State: api.ALUAStandby, Targets: []string{}},
		}}
	var b bytes.Buffer
	writeState(&b, st)
	want := "Operational Status: online\nConfig Status     : initialized\nALUA Status       : disabled\nALUA Node         : 0\n" +
		"ALUA Target Port Group 1: Active/Optimized\n" +
		"ALUA Target Port Group 2: Active/Non-optimized\n" +
		"ALUA Target Port Group 3: Standby\n"
	if b.String() != want {
		t.Errorf("list-state:\n%s\nwant:\n%s", b.String(), want)
	}
	srv := apitest.Serve(t, map[string]apitest.Reply{api.MethodGetState: {Body: st}})
	code, out, _ := runCLI(t, srv.Socket, "stmfadm", "list-state", "-o", "json")
	if code != 0 || !strings.Contains(out, `"target_port_groups": [`) || !strings.Contains(out, `"state": "standby"`) {
		t.Errorf("list-state -o json: exit %d\n%s", code, out)
	}
}

func TestSetALUAStateHelp(t *testing.T) {
	code, out, _ := runCLI(t, "/nonexistent", "stmfadm", "set-alua-state", "--help")
	if code != 0 || !strings.Contains(out, "EXAMPLES") || !strings.Contains(out, "prefer active-nonoptimized over standby") {
		t.Errorf("exit %d, help:\n%s", code, out)
	}
}
