package iscsi

import (
	"fmt"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

func TestLoginFailureOf(t *testing.T) {
	for _, tc := range []struct {
		st   loginStatus
		want LoginFailure
	}{
		{statusAuthFailure, LoginAuth},
		{statusForbidden, LoginNoAccess},
		{statusNotFound, LoginNoAccess},
		{statusTargetRemoved, LoginNoAccess},
		{statusInitiatorError, LoginNegotiation},
		{statusMissingParameter, LoginNegotiation},
		{statusUnsupportedVersion, LoginNegotiation},
		{statusInvalidDuringLogin, LoginNegotiation},
		{statusServiceUnavailable, LoginTargetError},
		{statusOutOfResources, LoginTargetError},
	} {
		if got := loginFailureOf(tc.st); got != tc.want {
			t.Errorf("loginFailureOf(0x%04x) = %v, want %v", uint16(tc.st), got, tc.want)
		}
	}
}

// TestServerStats drives logins, R2Ts and TMFs and checks the snapshot,
// before and after the session closes.
func TestServerStats(t *testing.T) {
	env := startServer(t, func(c *Config) { c.LoginTimeout = 200 * time.Millisecond })

	bad := dial(t, env.addr)
	r, _ := bad.loginPDU(true, 0, 1, []pdu.KV{kv("InitiatorName", testInitiator), kv("TargetName", "iqn.2026-01.test:nope")}, nil)
	if st := loginStatusOf(r); st != uint16(statusNotFound) {
		t.Fatalf("unknown target: status 0x%04x", st)
	}
	idle := dial(t, env.addr) // never sends a login: times out
	idle.expectClosed()

	in := dial(t, env.addr)
	in.login(testTarget, kv("ImmediateData", "No"), kv("InitialR2T", "Yes"), kv("MaxBurstLength", "4096"))
	itt := in.scsiCmd(cdbRW(0x2a, 0, 16), false, true, 8192, nil, false)
	res := in.wait(map[uint32][]byte{itt: pattern(8192, 1)}, itt)[itt]
	if res.status != 0 || res.r2ts != 2 {
		t.Fatalf("write: %v, %d R2Ts", res, res.r2ts)
	}
	if code := in.abortTMF(0x7777, in.cmdSN); code == tmfRespRejected {
		t.Fatalf("ABORT TASK rejected")
	}

	st := env.srv.Stats()
	var want ProtocolStats
	want.R2Ts = 2
	want.TMFs[tmfAbortTask] = 1
	if len(st.Sessions) != 1 || st.Sessions[0].ProtocolStats != want || st.Sessions[0].Target != testTarget ||
		st.Sessions[0].Initiator != testInitiator {
		t.Errorf("live session: %+v, want %+v", st.Sessions, want)
	}
	tgt := st.Targets[testTarget]
	if tgt.Sessions != 1 || tgt.Logins != 1 || tgt.ProtocolStats != want || tgt.Failures != [NumLoginFailures]uint64{} {
		t.Errorf("target: %+v", tgt)
	}
	var unknown [NumLoginFailures]uint64
	unknown[LoginNoAccess], unknown[LoginTimeout] = 1, 1
	if got := st.Targets[""].Failures; got != unknown {
		t.Errorf("failures of unknown targets %v, want %v", got, unknown)
	}
	ini := st.Initiators[testInitiator]
	if ini.Logins != 1 || ini.Failures[LoginNoAccess] != 1 {
		t.Errorf("initiator: %+v", ini)
	}
	if got := st.Initiators[""].Failures[LoginTimeout]; got != 1 {
		t.Errorf("timeouts without an initiator name: %d", got)
	}

	in.logout()
	deadline := time.Now().Add(5 * time.Second)
	for len(env.srv.Stats().Sessions) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st = env.srv.Stats()
	if tgt := st.Targets[testTarget]; len(st.Sessions) != 0 || tgt.Sessions != 0 || tgt.ProtocolStats != want {
		t.Errorf("after logout: sessions %+v, target %+v; want the closed session's counts kept", st.Sessions, tgt)
	}
}

// TestInitiatorSeriesCapped checks that names from the wire cannot grow
// the initiator series without bound.
func TestInitiatorSeriesCapped(t *testing.T) {
	var s serverStats
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < MaxInitiatorSeries+10; i++ {
		_, c := s.loginCounters("", fmt.Sprintf("iqn.2026-01.test:i%d", i))
		c.Failures[LoginAuth]++
	}
	if len(s.initiators) != MaxInitiatorSeries+1 {
		t.Fatalf("%d initiator series, want %d", len(s.initiators), MaxInitiatorSeries+1)
	}
	if got := s.initiators[OtherInitiators].Failures[LoginAuth]; got != 10 {
		t.Errorf("%s counted %d failures, want 10", OtherInitiators, got)
	}
}
