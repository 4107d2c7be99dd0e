package iscsi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

// refused reports whether the target closed nc without a word.
func refused(t *testing.T, nc net.Conn) bool {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var b [1]byte
	_, err := nc.Read(b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// TestConnectionLimits: connections over a limit are closed before
// login; a slot freed is usable again.
func TestConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"per source", func(c *Config) { c.MaxConnectionsPerSource = 2 }},
		{"per portal", func(c *Config) { c.MaxConnectionsPerPortal = 2 }},
		{"logins in progress", func(c *Config) { c.MaxLoginsInProgress = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startServer(t, tc.mod)
			a, b := dial(t, env.addr), dial(t, env.addr)
			c, err := net.Dial("tcp", env.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !refused(t, c) {
				t.Fatal("third connection not refused")
			}
			if refused(t, a.nc) || refused(t, b.nc) {
				t.Fatal("admitted connections closed")
			}
			a.login(testTarget)
			if tc.name == "logins in progress" {
				// a finished its login: its slot is free again, b's is not.
				d := dial(t, env.addr)
				d.isid[5] = 9
				d.login(testTarget)
				return
			}
			a.logout()
			waitFor(t, func() bool { return env.loopbackConns() == 1 })
			d := dial(t, env.addr)
			d.isid[5] = 9
			d.login(testTarget)
		})
	}
}

// chapAttempt runs a CHAP login with secret from initiator name and
// returns its status and how long the answer to CHAP_R took.
func chapAttempt(t *testing.T, addr, name, secret string) (uint16, time.Duration) {
	in := dial(t, addr)
	r, m := in.loginPDU(false, 0, 0, []pdu.KV{kv("InitiatorName", name), kv("TargetName", testTarget),
		kv("AuthMethod", "CHAP")}, nil)
	if loginStatusOf(r) != 0 {
		t.Fatalf("AuthMethod: 0x%04x", loginStatusOf(r))
	}
	_, m = in.loginPDU(false, 0, 0, []pdu.KV{kv("CHAP_A", "5")}, nil)
	var id int
	fmt.Sscan(m["CHAP_I"], &id)
	ch, _ := decodeBinary(m["CHAP_C"])
	resp := chapResponse(chapHash(5), byte(id), secret, ch)
	start := time.Now()
	r, _ = in.loginPDU(true, 0, 1, []pdu.KV{kv("CHAP_N", "alice"), kv("CHAP_R", "0x"+hexs(resp))}, nil)
	return loginStatusOf(r), time.Since(start)
}

// TestCHAPFailureDelay: wrong CHAP responses are answered later and later
// per initiator name and source; another name is not slowed down, and a
// success forgets the failures.
func TestCHAPFailureDelay(t *testing.T) {
	const base = 150 * time.Millisecond
	env := startServer(t, func(c *Config) {
		c.AuthFailDelay = base
		c.Auth = AuthFunc(func(_ context.Context, r AuthRequest) (CHAPCredentials, error) {
			return CHAPCredentials{Required: true, InitiatorUser: "alice", InitiatorSecret: "0123456789ab"}, nil
		})
	})
	const bad, good = "wrong-secret", "0123456789ab"
	other := "iqn.2026-01.test:other"
	for i, want := range []time.Duration{base, 2 * base, 4 * base} {
		st, took := chapAttempt(t, env.addr, testInitiator, bad)
		if st != 0x0201 || took < want {
			t.Fatalf("failure %d: status 0x%04x after %v, want 0x0201 after >= %v", i+1, st, took, want)
		}
	}
	if st, took := chapAttempt(t, env.addr, other, good); st != 0 || took >= base {
		t.Fatalf("other initiator: status 0x%04x after %v", st, took)
	}
	if st, _ := chapAttempt(t, env.addr, testInitiator, good); st != 0 {
		t.Fatalf("right secret: 0x%04x", st)
	}
	if st, took := chapAttempt(t, env.addr, testInitiator, bad); st != 0x0201 || took >= 2*base {
		t.Fatalf("after a success: 0x%04x after %v, want the first delay again", st, took)
	}
}

// TestAuthFailTableBounded: the failure table never grows past its bound
// and drops expired entries first.
func TestAuthFailTableBounded(t *testing.T) {
	g := newGuard()
	now := time.Now()
	g.authFailed("old", time.Second, now.Add(-time.Hour))
	for i := 0; i < maxAuthFailEntries+200; i++ {
		g.authFailed(fmt.Sprint("k", i), time.Second, now.Add(time.Duration(i)))
	}
	if n := len(g.authFails); n > maxAuthFailEntries {
		t.Fatalf("%d entries", n)
	}
	if _, ok := g.authFails["old"]; ok {
		t.Fatal("expired entry kept")
	}
	if d := g.authFailed("k0", time.Second, now); d != time.Second {
		t.Fatalf("evicted oldest entry still delayed %v", d)
	}
	for i, want := range []time.Duration{1, 2, 4, 8, 8} {
		if d := g.authFailed("x", time.Second, now); d != want*time.Second {
			t.Fatalf("failure %d: delay %v, want %v", i+1, d, want*time.Second)
		}
	}
}

// lockedBuf is a log sink safe for the server's goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestLoginRejectedLogged: each rejected login is logged once with its
// reason, a CHAP failure without the secret; refusals by a limit are rate
// limited.
func TestLoginRejectedLogged(t *testing.T) {
	var buf lockedBuf
	env := startServer(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, nil))
		c.AuthFailDelay = -1
		c.MaxConnectionsPerSource = 1
		c.Auth = AuthFunc(func(_ context.Context, r AuthRequest) (CHAPCredentials, error) {
			return CHAPCredentials{Required: true, InitiatorUser: "alice", InitiatorSecret: "0123456789ab"}, nil
		})
	})
	count := func(s string) int { return strings.Count(buf.String(), s) }
	in := dial(t, env.addr)
	r, _ := in.loginPDU(true, 0, 1, []pdu.KV{kv("InitiatorName", testInitiator), kv("TargetName", "iqn.2026-01.test:nope"),
		kv("AuthMethod", "CHAP")}, nil)
	if loginStatusOf(r) != 0x0203 {
		t.Fatalf("status 0x%04x", loginStatusOf(r))
	}
	in.expectClosed()
	waitFor(t, func() bool { return count("reason=target-not-found") == 1 })
	// The rejection is logged before the connection's slot is given back:
	// with one connection per source the next dial must wait for that too.
	sourceFree := func() bool { return env.loopbackConns() == 0 }
	waitFor(t, sourceFree)
	if st, _ := chapAttempt(t, env.addr, testInitiator, "wrong-secret"); st != 0x0201 {
		t.Fatalf("status 0x%04x", st)
	}
	waitFor(t, func() bool { return count("reason=authentication") == 1 })
	waitFor(t, sourceFree)
	// Over the per-source limit: many refusals, one line.
	hold := dial(t, env.addr)
	_ = hold
	for i := 0; i < 5; i++ {
		if c, err := net.Dial("tcp", env.addr); err == nil {
			refused(t, c)
			c.Close()
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := count("reason=" + rejectSourceLimit); n != 1 {
		t.Fatalf("%d limit lines:\n%s", n, buf.String())
	}
	if strings.Contains(buf.String(), "0123456789ab") || strings.Contains(buf.String(), "wrong-secret") {
		t.Fatalf("a secret reached the log:\n%s", buf.String())
	}
	if n := count("login rejected"); n != 2 {
		t.Fatalf("%d login rejected lines, want 2:\n%s", n, buf.String())
	}
}

// loopbackConns is how many connections the guard counts from 127.0.0.1.
func (env *testEnv) loopbackConns() int {
	env.srv.guard.mu.Lock()
	defer env.srv.guard.mu.Unlock()
	return env.srv.guard.perSource["127.0.0.1"]
}
