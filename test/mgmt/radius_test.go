package mgmt

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/test/harness"
)

const radiusShared = "radius-shared-secret-1"

// startFreeRADIUS runs FreeRADIUS in the foreground on 127.0.0.1:port
// with a minimal configuration in dir: the client 127.0.0.1 with
// radiusShared, and users (name → Cleartext-Password) checked by the chap
// module.
func startFreeRADIUS(t *testing.T, dir string, users map[string]string) (*harness.Child, string) {
	t.Helper()
	bin := harness.LookTool(t, "freeradius")
	port := harness.FreeUDPPortOn(t, "127.0.0.1")
	conf := filepath.Join(dir, "raddb")
	for _, d := range []string{conf, filepath.Join(conf, "log"), filepath.Join(conf, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var u strings.Builder
	for name, pw := range users {
		fmt.Fprintf(&u, "%s\tCleartext-Password := %q\n", name, pw)
	}
	radiusd := strings.NewReplacer("DIR", conf, "PORT", port, "SECRET", radiusShared).Replace(`
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = DIR/log
raddbdir = DIR
radacctdir = DIR/log
name = freeradius
confdir = DIR
modconfdir = DIR
run_dir = DIR/run
db_dir = DIR
libdir = /usr/lib/freeradius
pidfile = DIR/run/freeradius.pid
max_request_time = 10
cleanup_delay = 1
max_requests = 256
hostname_lookups = no
log {
	destination = stdout
	auth = yes
}
security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = no
}
client local {
	ipaddr = 127.0.0.1
	secret = SECRET
	require_message_authenticator = yes
}
modules {
	chap {
	}
	files {
		filename = DIR/users
	}
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = PORT
	}
	authorize {
		files
		chap
	}
	authenticate {
		Auth-Type CHAP {
			chap
		}
	}
}
`)
	for name, body := range map[string]string{"radiusd.conf": radiusd, "users": u.String()} {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := harness.StartChild(t, dir, bin, "-X", "-d", conf)
	c.WaitLog("Ready to process requests", 20*time.Second)
	return c, "127.0.0.1:" + port
}

// TestRADIUSCHAP: with auth radius the CHAP response is checked by a real
// FreeRADIUS server: the right secret logs in, a wrong one is refused,
// and with the server down logins are refused with a clear log line.
func TestRADIUSCHAP(t *testing.T) {
	suite.Binaries(t)
	harness.RequireTools(t, "iscsi-inq")
	dir := harness.TempDir(t, "rad")
	rad, addr := startFreeRADIUS(t, dir, map[string]string{"alice": "alice-secret-12"})

	d := startDaemon(t, filepath.Join(dir, "state"))
	lu := d.CreateLU(harness.Backing(t, dir, "a", 16*mib))
	d.OK("stmfadm", "add-view", lu)
	d.OK("itadm", "create-target", "-n", target)
	if _, errs, code := d.Run(radiusShared+"\n"+radiusShared+"\n", "itadm", "modify-defaults", "-a", "radius", "-r", addr, "-d"); code != 0 {
		t.Fatalf("modify-defaults -a radius: %s", errs)
	}
	if out := d.OK("itadm", "list-defaults"); !strings.Contains(out, "radiusserver:  \t"+addr) || !strings.Contains(out, "radiussecret:  \tset") {
		t.Fatalf("list-defaults:\n%s", out)
	}
	inq := func(userinfo string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "iscsi-inq", "-i", hostA, "iscsi://"+userinfo+d.Portal+"/"+target+"/0").CombinedOutput()
		t.Logf("$ iscsi-inq (%s) (%v)\n%s", strings.Split(userinfo, "%")[0], err, out)
		return err
	}
	if err := inq("alice%alice-secret-12@"); err != nil {
		t.Fatalf("login with the secret the RADIUS server holds failed: %v\n%s\n%s", err, d.LogTail(20), rad.Log())
	}
	if !strings.Contains(rad.Log(), "Login OK: [alice]") {
		t.Fatalf("FreeRADIUS did not authenticate alice:\n%s", rad.Log())
	}
	if err := inq("alice%wrong-secret-99@"); err == nil {
		t.Fatal("login with a wrong secret succeeded")
	}
	if err := inq("bob%alice-secret-12@"); err == nil {
		t.Fatal("login as a user the RADIUS server does not know succeeded")
	}
	if err := inq(""); err == nil {
		t.Fatal("login without CHAP succeeded with auth radius")
	}
	if !strings.Contains(d.Log(), "CHAP response rejected") {
		t.Fatalf("no rejection in the daemon log:\n%s", d.LogTail(30))
	}
	if strings.Contains(d.Log(), radiusShared) || strings.Contains(d.Log(), "alice-secret-12") {
		t.Fatal("a secret appears in the daemon log")
	}

	rad.Stop()
	if err := inq("alice%alice-secret-12@"); err == nil {
		t.Fatal("login succeeded with the RADIUS server down")
	}
	log := d.Log()
	if !strings.Contains(log, "radius: server unreachable") || !strings.Contains(log, "login refused: CHAP response could not be verified") {
		t.Fatalf("no clear log line for the RADIUS server being down:\n%s", d.LogTail(30))
	}
}
