package mgmt

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/test/harness"
)

// isnsServer is a real open-isns isnsd on a loopback port with an
// in-memory database, and the isnsadm configuration to query it.
type isnsServer struct {
	*harness.Child
	addr, adminConf, conf, bin string
	dir                        string
}

func startISNSD(t *testing.T, dir string) *isnsServer {
	t.Helper()
	bin := harness.LookTool(t, "isnsd")
	harness.LookTool(t, "isnsadm")
	port := harness.FreePortOn(t, "127.0.0.1")
	s := &isnsServer{addr: "127.0.0.1:" + port, bin: bin, dir: dir,
		conf: filepath.Join(dir, "isnsd.conf"), adminConf: filepath.Join(dir, "isnsadm.conf")}
	// ESI every 1-2 s (the client asks for 60 s; the server rounds down),
	// so a restarted server is noticed within seconds.
	server := fmt.Sprintf(`BindAddress = %[1]s
ServerAddress = %[1]s
SourceName = iqn.2026-11.org.test:isns-server
PIDFile = %[2]s/isnsd.pid
ControlSocket = %[2]s/isnsctl
Security = 0
SLPRegister = 0
DefaultDiscoveryDomain = 1
RegistrationPeriod = 1h
ESIRetries = 3
ESIMinInterval = 1
ESIMaxInterval = 2
`, s.addr, dir)
	admin := fmt.Sprintf("ServerAddress = %s\nSourceName = iqn.2026-11.org.test:isnsadm\nControlSocket = %s/isnsctl\nSecurity = 0\n", s.addr, dir)
	for p, body := range map[string]string{s.conf: server, s.adminConf: admin} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.start(t)
	return s
}

func (s *isnsServer) start(t *testing.T) {
	t.Helper()
	s.Child = harness.StartChild(t, s.dir, s.bin, "-f", "-4", "-c", s.conf, "-d", "message,esi")
	deadline := time.Now().Add(10 * time.Second)
	for !s.answers() {
		if time.Now().After(deadline) || s.Exited() {
			t.Fatalf("isnsd does not answer on %s:\n%s", s.addr, s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *isnsServer) answers() bool {
	_, err := s.query()
	return err == nil
}

// query is isnsadm --query of every storage node with its entity,
// portals and portal groups.
func (s *isnsServer) query() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "isnsadm", "-c", s.adminConf, "--query", "iscsi-name").CombinedOutput()
	if err != nil || strings.Contains(string(out), "Query failed") {
		return string(out), fmt.Errorf("isnsadm --query: %v: %s", err, out)
	}
	return string(out), nil
}

// waitFor polls isnsadm --query until ok accepts its output.
func (s *isnsServer) waitFor(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var out string
	for {
		var err error
		out, err = s.query()
		if err == nil && ok(out) {
			t.Logf("iSNS: %s", what)
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("iSNS server never showed %s; last isnsadm --query:\n%s", what, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// node returns the query output's storage node block for name ("" when
// it is not registered).
func node(out, name string) string {
	for _, obj := range strings.Split(out, "object[") {
		if strings.Contains(obj, "<iSCSI Storage Node>") && strings.Contains(obj, `iSCSI name = "`+name+`"`) {
			return obj
		}
	}
	return ""
}

// hasPG reports whether out has a portal group object for name at
// portal ("ip:port") with tag.
func hasPG(out, name, portal string, tag int) bool {
	ip, port, _ := strings.Cut(portal, ":")
	re := regexp.MustCompile(`Portal group name = "` + regexp.QuoteMeta(name) + `"\s+\S+\s+ipaddr\s+: Portal group address = ` +
		regexp.QuoteMeta(ip) + `\s+\S+\s+uint32\s+: Portal group port = ` + port + `/tcp\s+\S+\s+uint32\s+: Portal group tag = ` + fmt.Sprint(tag) + `\n`)
	return re.MatchString(out)
}

// TestISNS: with iSNS enabled, a real isnsd sees the online targets with
// their aliases, portals and portal group tags, follows every change
// made with itadm and stmfadm, loses them when iSNS is disabled, gets
// them back after it restarts with an empty database, and sees them
// deregistered when stmfd shuts down.
func TestISNS(t *testing.T) {
	suite.Binaries(t)
	dir := harness.TempDir(t, "isns")
	srv := startISNSD(t, dir)
	d := startDaemon(t, filepath.Join(dir, "state"))
	const t1, t2 = "iqn.2026-11.org.test:isns-one", "iqn.2026-11.org.test:isns-two"
	d.OK("itadm", "create-target", "-n", t1, "-l", "first")
	d.OK("itadm", "modify-defaults", "-I", srv.addr, "-i", "enable")
	if out := d.OK("itadm", "list-defaults"); !strings.Contains(out, "isns:          \tenabled") || !strings.Contains(out, srv.addr) {
		t.Fatalf("list-defaults:\n%s", out)
	}
	srv.waitFor(t, "the target with its alias and portal", func(out string) bool {
		n := node(out, t1)
		return strings.Contains(n, "iSCSI node type = Target") && strings.Contains(n, `iSCSI alias = "first"`) && hasPG(out, t1, d.Portal, 1)
	})

	d.OK("itadm", "modify-target", "-l", "renamed", t1)
	srv.waitFor(t, "the new alias", func(out string) bool { return strings.Contains(node(out, t1), `iSCSI alias = "renamed"`) })

	// Another portal group: the target moves to its portal and tag.
	fast := "127.0.0.2:" + harness.FreePortOn(t, "127.0.0.2")
	d.OK("itadm", "create-tpg", "fast", fast)
	d.OK("itadm", "modify-target", "-t", "fast", t1)
	srv.waitFor(t, "the target on the new portal group", func(out string) bool {
		return hasPG(out, t1, fast, 2) && !hasPG(out, t1, d.Portal, 1)
	})

	d.OK("itadm", "create-target", "-n", t2)
	srv.waitFor(t, "a second target", func(out string) bool { return node(out, t2) != "" && hasPG(out, t2, d.Portal, 1) })
	d.OK("stmfadm", "offline-target", t2)
	srv.waitFor(t, "the offline target gone", func(out string) bool { return node(out, t2) == "" && node(out, t1) != "" })
	d.OK("stmfadm", "online-target", t2)
	srv.waitFor(t, "the target back online", func(out string) bool { return node(out, t2) != "" })
	d.OK("itadm", "delete-target", "-f", t2)
	srv.waitFor(t, "the deleted target gone", func(out string) bool { return node(out, t2) == "" && node(out, t1) != "" })

	d.OK("itadm", "modify-defaults", "-i", "disable")
	srv.waitFor(t, "nothing once iSNS is disabled", func(out string) bool { return node(out, t1) == "" })
	d.OK("itadm", "modify-defaults", "-i", "enable")
	srv.waitFor(t, "the target again once iSNS is enabled", func(out string) bool { return node(out, t1) != "" })

	srv.waitFor(t, "an answered ESI", func(string) bool { return strings.Contains(srv.Log(), "Good ESI response") })

	// The server restarts with an empty database: the missing ESI tells
	// us, and we register again.
	srv.Stop()
	srv.start(t)
	if out, _ := srv.query(); node(out, t1) != "" {
		t.Fatalf("a fresh isnsd already knows the target:\n%s", out)
	}
	srv.waitFor(t, "the target registered again after the server restarted", func(out string) bool { return hasPG(out, t1, fast, 2) })

	// Shutdown deregisters at once (not the server's ESI expiry).
	if code, _ := d.Stop(); code != 0 {
		t.Fatalf("stmfd exit %d", code)
	}
	if out, err := srv.query(); err != nil || node(out, t1) != "" {
		t.Fatalf("target still registered right after stmfd stopped (%v):\n%s", err, out)
	}
	if !strings.Contains(d.Log(), "isns: registered") {
		t.Errorf("no registration in the daemon log")
	}
}
