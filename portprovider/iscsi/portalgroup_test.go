package iscsi

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

const pgTarget = "iqn.2026-01.test:pg"

// addrOn returns the server's listen address on ip (a portal group portal
// configured with port 0).
func addrOn(t *testing.T, srv *Server, ip string) string {
	t.Helper()
	for _, a := range srv.Addrs() {
		if ta := a.(*net.TCPAddr); ta.IP.String() == ip {
			return a.String()
		}
	}
	t.Fatalf("no listener on %s in %v", ip, srv.Addrs())
	return ""
}

func hasListenerOn(srv *Server, ip string) bool {
	for _, a := range srv.Addrs() {
		if a.(*net.TCPAddr).IP.String() == ip {
			return true
		}
	}
	return false
}

// tryLogin runs the first login step as testInitiator (with isid[5]=id)
// and returns the login status.
func tryLogin(t *testing.T, addr, target string, id byte) uint16 {
	t.Helper()
	in := dial(t, addr)
	in.isid[5] = id
	r, _ := in.loginPDU(true, pdu.StageSecurity, pdu.StageOperational,
		[]pdu.KV{kv("InitiatorName", testInitiator), kv("TargetName", target), kv("AuthMethod", "None")}, nil)
	in.nc.Close()
	return loginStatusOf(r)
}

// sendTargets runs SendTargets=All in a discovery session at addr and
// returns the answer with NULs shown as ';'.
func sendTargetsAt(t *testing.T, addr string) string {
	t.Helper()
	in := dial(t, addr)
	in.isid[5] = 0x77
	in.login("")
	var h pdu.Header
	h.SetOpcode(pdu.OpTextReq, true)
	h.SetFlags(pdu.FlagFinal)
	h.SetITT(in.nextITT())
	h.SetU32(pdu.OffTTT, pdu.ReservedTag)
	if err := in.send(&h, nil, pdu.EncodeText([]pdu.KV{kv("SendTargets", "All")})); err != nil {
		t.Fatal(err)
	}
	_, d := in.expect(pdu.OpTextResp)
	in.logout()
	return strings.ReplaceAll(string(d), "\x00", ";")
}

// rtpgGroups sends REPORT TARGET PORT GROUPS and returns group -> relative
// port ids.
func rtpgGroups(t *testing.T, in *initiator) map[uint16][]uint16 {
	t.Helper()
	cdb := make([]byte, 12)
	cdb[0], cdb[1] = 0xa3, 0x0a
	binary.BigEndian.PutUint32(cdb[6:10], 1024)
	itt := in.scsiCmd(cdb, true, false, 1024, nil, false)
	r := in.wait(nil, itt)[itt]
	if r.status != 0 || len(r.data) < 4 {
		t.Fatalf("RTPG: %v sense % x", r, r.sense)
	}
	out := map[uint16][]uint16{}
	d := r.data[4:]
	for len(d) >= 8 {
		g := binary.BigEndian.Uint16(d[2:4])
		n := int(d[7])
		if len(d) < 8+4*n {
			t.Fatalf("RTPG descriptor truncated: % x", r.data)
		}
		for i := 0; i < n; i++ {
			out[g] = append(out[g], binary.BigEndian.Uint16(d[8+4*i+2:]))
		}
		d = d[8+4*n:]
	}
	return out
}

func TestPortalGroups(t *testing.T) {
	env := startServer(t, nil)
	def := env.addr
	err := env.srv.AddTarget(TargetConfig{Name: pgTarget, Alias: "pg", PortalGroups: []PortalGroup{{Tag: 2, Portals: []string{"127.0.0.2:0"}}}})
	if err != nil {
		t.Fatal(err)
	}
	a2 := addrOn(t, env.srv, "127.0.0.2")

	// Reachable through its group's portal only, and the default target
	// only through the default portal: elsewhere "not found" (0203h).
	for _, tc := range []struct {
		addr, target string
		want         uint16
	}{
		{def, pgTarget, 0x0203},
		{a2, testTarget, 0x0203},
	} {
		if st := tryLogin(t, tc.addr, tc.target, 1); st != tc.want {
			t.Errorf("login to %s at %s: status %#04x, want %#04x", tc.target, tc.addr, st, tc.want)
		}
	}
	in := dial(t, a2)
	in.login(pgTarget)
	if in.answers["TargetPortalGroupTag"] != "2" || in.answers["TargetAlias"] != "pg" {
		t.Fatalf("login answers %v", in.answers)
	}
	writeThenRead(t, in, 0, 4096, 1)

	// SendTargets lists each target's own portals and tags, whichever
	// portal the discovery session uses.
	want := "TargetName=" + pgTarget + ";TargetAddress=" + a2 + ",2;"
	for _, at := range []string{def, a2} {
		if got := sendTargetsAt(t, at); !strings.Contains(got, want) || !strings.Contains(got, "TargetName="+testTarget+";TargetAddress="+def+",1;") {
			t.Errorf("SendTargets at %s: %q", at, got)
		}
	}

	// Each portal group is a target port and an ALUA target port group.
	ids := env.fw.RelativePortIDs()
	rel2, ok := ids[pgTarget+",t,0x0002"]
	if !ok {
		t.Fatalf("no target port for tag 2: %v", ids)
	}
	if g := rtpgGroups(t, in); !slices.Contains(g[2], rel2) || len(g[1]) == 0 {
		t.Fatalf("RTPG groups %v, want group 2 with port %d and group 1", g, rel2)
	}

	// Live: a new portal group opens a listener; the session through the
	// group that stays keeps working; the alias changes for new logins.
	err = env.srv.UpdateTarget(TargetConfig{Name: pgTarget, Alias: "pg2", PortalGroups: []PortalGroup{
		{Tag: 2, Portals: []string{"127.0.0.2:0"}}, {Tag: 3, Portals: []string{"127.0.0.3:0"}}}})
	if err != nil {
		t.Fatal(err)
	}
	a3 := addrOn(t, env.srv, "127.0.0.3")
	writeThenRead(t, in, 8, 4096, 2)
	in3 := dial(t, a3)
	in3.isid[5] = 3
	in3.login(pgTarget)
	if in3.answers["TargetPortalGroupTag"] != "3" || in3.answers["TargetAlias"] != "pg2" {
		t.Fatalf("login answers %v", in3.answers)
	}
	if g := rtpgGroups(t, in3); len(g[3]) != 1 || !slices.Contains(g[2], rel2) {
		t.Fatalf("RTPG groups %v", g)
	}
	if got := sendTargetsAt(t, def); !strings.Contains(got, "TargetAddress="+a2+",2;TargetAddress="+a3+",3;") {
		t.Fatalf("SendTargets after update: %q", got)
	}

	// Dropping group 2 ends its session and closes its listener; the
	// session through group 3 stays.
	err = env.srv.UpdateTarget(TargetConfig{Name: pgTarget, PortalGroups: []PortalGroup{{Tag: 3, Portals: []string{"127.0.0.3:0"}}}})
	if err != nil {
		t.Fatal(err)
	}
	in.expectClosed()
	if hasListenerOn(env.srv, "127.0.0.2") {
		t.Fatal("listener of the removed portal group still open")
	}
	if _, err := dialErr(a2); err == nil {
		t.Fatal("removed portal still accepts connections")
	}
	if _, ok := env.fw.RelativePortIDs()[pgTarget+",t,0x0002"]; !ok {
		t.Fatal("relative port id forgotten (must stay stable)")
	}
	writeThenRead(t, in3, 16, 4096, 3)
	var normal []SessionInfo
	for _, s := range env.srv.Sessions() {
		if !s.Discovery {
			normal = append(normal, s)
		}
	}
	if len(normal) != 1 || normal[0].TPGT != 3 {
		t.Fatalf("sessions %+v, want one on tag 3", normal)
	}

	// A portal that cannot listen fails the change and changes nothing.
	err = env.srv.UpdateTarget(TargetConfig{Name: pgTarget, PortalGroups: []PortalGroup{
		{Tag: 3, Portals: []string{"127.0.0.3:0"}}, {Tag: 4, Portals: []string{"192.0.2.1:3260"}}}})
	if err == nil {
		t.Fatal("unlistenable portal accepted")
	}
	if got := env.srv.Targets(); len(got) != 2 || len(got[0].PortalGroups) != 1 || got[0].PortalGroups[0].Tag != 3 {
		t.Fatalf("targets after failed update: %+v", got)
	}
	if _, ok := env.fw.RelativePortIDs()[pgTarget+",t,0x0004"]; ok {
		// The id may be reserved, but the port must not be registered.
		if g := rtpgGroups(t, in3); len(g[4]) != 0 {
			t.Fatalf("port of the failed group registered: %v", g)
		}
	}
	writeThenRead(t, in3, 24, 4096, 4)
	in3.logout()

	// Bad configurations are refused.
	for _, bad := range []TargetConfig{
		{Name: "iqn.2026-01.test:bad", PortalGroups: []PortalGroup{{Tag: 0, Portals: []string{"127.0.0.2:0"}}}},
		{Name: "iqn.2026-01.test:bad", PortalGroups: []PortalGroup{{Tag: 5}, {Tag: 5}}},
		{Name: "iqn.2026-01.test:bad", PortalGroups: []PortalGroup{{Tag: 5, Portals: []string{"localhost:3260"}}}},
	} {
		if err := env.srv.AddTarget(bad); !errors.Is(err, ErrBadPortalGroup) {
			t.Errorf("AddTarget(%+v): %v", bad, err)
		}
	}

	// Removing the target closes the listener only it used.
	if err := env.srv.RemoveTarget(pgTarget); err != nil {
		t.Fatal(err)
	}
	if hasListenerOn(env.srv, "127.0.0.3") {
		t.Fatal("listener still open after RemoveTarget")
	}
	if got := sendTargetsAt(t, def); strings.Contains(got, pgTarget) {
		t.Fatalf("removed target still discovered: %q", got)
	}
}

// freePort returns a TCP port free on 127.0.0.1 (and, in practice, on the
// other loopback addresses) at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestPortalCoveredByWildcard: a portal group portal on the port of a
// wildcard default portal is served by the wildcard listener, and logins
// are still told apart by the address they arrive on.
func TestPortalCoveredByWildcard(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	env := startServer(t, func(c *Config) { c.Portals = []string{"0.0.0.0:" + port} })
	if err := env.srv.AddTarget(TargetConfig{Name: pgTarget, PortalGroups: []PortalGroup{{Tag: 9, Portals: []string{"127.0.0.2:" + port}}}}); err != nil {
		t.Fatal(err)
	}
	if n := len(env.srv.Addrs()); n != 1 {
		t.Fatalf("%d listeners, want the wildcard one only", n)
	}
	if st := tryLogin(t, "127.0.0.1:"+port, pgTarget, 1); st != 0x0203 {
		t.Fatalf("login through the default portal: %#04x", st)
	}
	in := dial(t, "127.0.0.2:"+port)
	in.login(pgTarget)
	if in.answers["TargetPortalGroupTag"] != "9" {
		t.Fatalf("tag %q", in.answers["TargetPortalGroupTag"])
	}
	// The default target is reachable on every address of the wildcard.
	in2 := dial(t, "127.0.0.2:"+port)
	in2.isid[5] = 2
	in2.login(testTarget)
	got := sendTargetsAt(t, "127.0.0.3:"+port)
	if !strings.Contains(got, "TargetName="+pgTarget+";TargetAddress=127.0.0.2:"+port+",9;") ||
		!strings.Contains(got, "TargetName="+testTarget+";TargetAddress=127.0.0.3:"+port+",1;") {
		t.Fatalf("SendTargets: %q", got)
	}
	in.logout()
	in2.logout()
}

// TestLoginRace: logins racing portal group changes either fail or end
// up with a valid session; none survives on a group the target left.
func TestPortalGroupChangeDuringLogins(t *testing.T) {
	env := startServer(t, nil)
	g2 := []PortalGroup{{Tag: 2, Portals: []string{"127.0.0.2:0"}}}
	if err := env.srv.AddTarget(TargetConfig{Name: pgTarget, PortalGroups: g2}); err != nil {
		t.Fatal(err)
	}
	a2 := addrOn(t, env.srv, "127.0.0.2")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			pgs := g2
			if i%2 == 0 {
				pgs = append(slices.Clone(g2), PortalGroup{Tag: 3, Portals: []string{"127.0.0.3:0"}})
			}
			if err := env.srv.UpdateTarget(TargetConfig{Name: pgTarget, PortalGroups: pgs}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 20; i++ {
		st := tryLogin(t, a2, pgTarget, byte(i))
		if st != 0 {
			t.Fatalf("login through the stable group failed: %#04x", st)
		}
	}
	<-done
	// Tag 3 was removed last: no session may be on it.
	for _, s := range env.srv.Sessions() {
		if s.TPGT == 3 {
			t.Fatalf("session on a removed portal group: %+v", s)
		}
	}
}

// TestInitiatorNameCase: names compare in canonical form (RFC 3722), so a
// host group member stored lower-case matches an initiator that sends its
// name in upper case, and the default CHAP user (its name) too.
func TestInitiatorNameCase(t *testing.T) {
	const member = "iqn.2026-01.test:mixed"
	var asked []string
	env := startServer(t, func(c *Config) {
		c.Auth = AuthFunc(func(_ context.Context, r AuthRequest) (CHAPCredentials, error) {
			asked = append(asked, r.InitiatorName)
			return CHAPCredentials{Required: true, InitiatorUser: r.InitiatorName, InitiatorSecret: "0123456789abcdef"}, nil
		})
	})
	if err := env.fw.RemoveView(env.lu.GUID(), stmf.ViewEntry{}); err != nil {
		t.Fatal(err)
	}
	if err := env.fw.CreateHostGroup("hg"); err != nil {
		t.Fatal(err)
	}
	if err := env.fw.AddHostGroupMember("hg", member); err != nil {
		t.Fatal(err)
	}
	if _, err := env.fw.AddView(env.lu.GUID(), stmf.ViewEntry{HostGroup: "hg"}, false); err != nil {
		t.Fatal(err)
	}
	in := dial(t, env.addr)
	name := "IQN.2026-01.Test:MIXED"
	r, m := in.loginPDU(false, pdu.StageSecurity, pdu.StageOperational,
		[]pdu.KV{kv("InitiatorName", name), kv("TargetName", strings.ToUpper(testTarget)), kv("AuthMethod", "CHAP")}, nil)
	if st := loginStatusOf(r); st != 0 || m["AuthMethod"] != "CHAP" {
		t.Fatalf("status %#04x, answers %v", st, m)
	}
	_, m = in.loginPDU(false, pdu.StageSecurity, pdu.StageOperational, []pdu.KV{kv("CHAP_A", "5")}, nil)
	id, _ := strconv.Atoi(m["CHAP_I"])
	ch, _ := decodeBinary(m["CHAP_C"])
	resp := chapResponse(chapHash(5), byte(id), "0123456789abcdef", ch)
	r, _ = in.loginPDU(true, pdu.StageSecurity, pdu.StageOperational,
		[]pdu.KV{kv("CHAP_N", name), kv("CHAP_R", "0x"+hexs(resp))}, nil)
	if st := loginStatusOf(r); st != 0 {
		t.Fatalf("CHAP with the name in another case: %#04x", st)
	}
	r, _ = in.loginPDU(true, pdu.StageOperational, pdu.StageFullFeature, nil, nil)
	if st := loginStatusOf(r); st != 0 || !r.Final() {
		t.Fatalf("operational stage: %#04x", st)
	}
	if len(asked) != 1 || asked[0] != member {
		t.Fatalf("authenticator asked about %q", asked)
	}
	ss := env.srv.Sessions()
	if len(ss) != 1 || ss[0].Initiator != member {
		t.Fatalf("sessions %+v", ss)
	}
	sts := env.fw.Sessions()
	if len(sts) != 1 || sts[0].Nexus.InitiatorName != member || len(sts[0].LUNs()) != 1 {
		t.Fatalf("stmf nexus %+v", sts)
	}
	in.maxCmdSN = r.U32(pdu.OffMaxCmdSN)
	itt := in.scsiCmd([]byte{0}, false, false, 0, nil, false)
	if res := in.wait(nil, itt)[itt]; res.status != byte(scsi.StatusCheckCondition) {
		t.Fatalf("first command (power-on UA expected): %v", res)
	}
	itt = in.scsiCmd([]byte{0}, false, false, 0, nil, false)
	if res := in.wait(nil, itt)[itt]; res.status != 0 {
		t.Fatalf("TEST UNIT READY: %v", res)
	}
}

func TestCanonicalName(t *testing.T) {
	for in, want := range map[string]string{
		"iqn.2026-01.test:a":     "iqn.2026-01.test:a",
		"IQN.2026-01.Test:A":     "iqn.2026-01.test:a",
		"eui.02004567a425678d":   "eui.02004567A425678D",
		"EUI.02004567A425678d":   "eui.02004567A425678D",
		"naa.52004567ba64678d":   "naa.52004567BA64678D",
		"iqn.2026-01.test:ÄBC-x": "iqn.2026-01.test:äbc-x",
	} {
		if got := CanonicalName(in); got != want {
			t.Errorf("CanonicalName(%q) = %q, want %q", in, got, want)
		}
	}
}
