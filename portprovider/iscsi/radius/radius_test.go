package radius

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	layeh "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"

	"github.com/costar-project/costar/portprovider/iscsi"
)

const sharedSecret = "sharedsecret1"

func chapMD5(id byte, secret string, challenge []byte) []byte {
	m := md5.New()
	m.Write([]byte{id})
	m.Write([]byte(secret))
	m.Write(challenge)
	return m.Sum(nil)
}

// fakeServer is an in-process RADIUS server that knows alice's CHAP
// secret and checks the Access-Request's Message-Authenticator.
func fakeServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &layeh.PacketServer{
		SecretSource: layeh.StaticSecretSource([]byte(sharedSecret)),
		Handler: layeh.HandlerFunc(func(w layeh.ResponseWriter, r *layeh.Request) {
			code := layeh.CodeAccessReject
			pw := rfc2865.CHAPPassword_Get(r.Packet)
			ch := rfc2865.CHAPChallenge_Get(r.Packet)
			ma := rfc2869.MessageAuthenticator_Get(r.Packet)
			if rfc2865.UserName_GetString(r.Packet) == "alice" && len(pw) == 17 && len(ma) == 16 &&
				bytes.Equal(pw[1:], chapMD5(pw[0], "alicesecret1", ch)) {
				code = layeh.CodeAccessAccept
			}
			_ = w.Write(r.Response(code))
		}),
	}
	go func() { _ = srv.Serve(pc) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return pc.LocalAddr().String()
}

// silentServer reads and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc.LocalAddr().String()
}

func TestVerifyCHAP(t *testing.T) {
	live, silent := fakeServer(t), silentServer(t)
	challenge := bytes.Repeat([]byte{7}, 16)
	good := chapMD5(42, "alicesecret1", challenge)
	bad := chapMD5(42, "wrongsecret1", challenge)
	cases := []struct {
		name     string
		servers  []string
		secret   string
		user     string
		resp     []byte
		rejected bool // ErrCHAPRejected
		ok       bool
	}{
		{"accept", []string{live}, sharedSecret, "alice", good, false, true},
		{"wrong response", []string{live}, sharedSecret, "alice", bad, true, false},
		{"unknown user", []string{live}, sharedSecret, "bob", good, true, false},
		{"not MD5", []string{live}, sharedSecret, "alice", good[:10], true, false},
		{"failover past a silent server", []string{silent, live}, sharedSecret, "alice", good, false, true},
		{"only a silent server", []string{silent}, sharedSecret, "alice", good, false, false},
		// The server's answers do not authenticate with our secret: ignored, so no answer.
		{"wrong shared secret", []string{live}, "othersecret1", "alice", good, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			c := &Client{Servers: tc.servers, Secret: []byte(tc.secret), Timeout: 300 * time.Millisecond, Retry: 100 * time.Millisecond,
				Log: slog.New(slog.NewTextHandler(&logs, nil))}
			err := c.VerifyCHAP(context.Background(), tc.user, 42, challenge, tc.resp)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("want accept, got %v", err)
			case !tc.ok && err == nil:
				t.Fatal("want failure, got accept")
			case !tc.ok && errors.Is(err, iscsi.ErrCHAPRejected) != tc.rejected:
				t.Fatalf("rejected=%v, want %v: %v", errors.Is(err, iscsi.ErrCHAPRejected), tc.rejected, err)
			}
			if strings.Contains(logs.String(), tc.secret) {
				t.Fatalf("shared secret in the log: %s", logs.String())
			}
		})
	}
}

// TestServerDownLoggedOnce: a dead server is logged when it goes down and
// when it answers again, not at every login.
func TestServerDownLoggedOnce(t *testing.T) {
	silent := silentServer(t)
	var logs strings.Builder
	c := &Client{Servers: []string{silent}, Secret: []byte(sharedSecret), Timeout: 100 * time.Millisecond, Retry: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ch := bytes.Repeat([]byte{1}, 16)
	for range 3 {
		if err := c.VerifyCHAP(context.Background(), "alice", 1, ch, chapMD5(1, "x", ch)); err == nil || errors.Is(err, iscsi.ErrCHAPRejected) {
			t.Fatalf("silent server: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "server unreachable"); n != 1 {
		t.Fatalf("%d unreachable lines, want 1:\n%s", n, logs.String())
	}
	c.noteServer(silent, nil)
	if !strings.Contains(logs.String(), "answers again") {
		t.Fatalf("no recovery line:\n%s", logs.String())
	}
}
