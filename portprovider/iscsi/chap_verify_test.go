package iscsi

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

// fakeVerifier stands in for a RADIUS server holding secret for user.
type fakeVerifier struct {
	user, secret string
	down         bool
}

func (f fakeVerifier) VerifyCHAP(_ context.Context, user string, id byte, challenge, response []byte) error {
	if f.down {
		return errors.New("no server answered")
	}
	if user != f.user || !bytes.Equal(response, chapResponse(chapHash(chapMD5), id, f.secret, challenge)) {
		return ErrCHAPRejected
	}
	return nil
}

// TestCHAPVerifierLogin: with a verifier the target offers only MD5 and
// answers what the verifier decides: accept, reject (0201) or no answer
// (0301, the initiator may retry).
func TestCHAPVerifierLogin(t *testing.T) {
	cases := []struct {
		name     string
		v        fakeVerifier
		secret   string
		status   uint16
		mutualOK bool
	}{
		{"accepted", fakeVerifier{user: "alice", secret: "radiussecret1"}, "radiussecret1", 0, true},
		{"rejected", fakeVerifier{user: "alice", secret: "radiussecret1"}, "wrong-secret", 0x0201, false},
		{"server down", fakeVerifier{user: "alice", secret: "radiussecret1", down: true}, "radiussecret1", 0x0301, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := startServer(t, func(c *Config) {
				c.Auth = AuthFunc(func(context.Context, AuthRequest) (CHAPCredentials, error) {
					// A local initiator secret is ignored once a verifier decides.
					return CHAPCredentials{Required: true, InitiatorSecret: "localsecret12", TargetSecret: "targetsecret1", Verifier: tc.v}, nil
				})
			})
			in := dial(t, env.addr)
			r, m := in.loginPDU(false, 0, 0, []pdu.KV{kv("InitiatorName", testInitiator), kv("TargetName", testTarget),
				kv("AuthMethod", "CHAP")}, nil)
			if loginStatusOf(r) != 0 || m["AuthMethod"] != "CHAP" {
				t.Fatalf("AuthMethod: %v", m)
			}
			r, m = in.loginPDU(false, 0, 0, []pdu.KV{kv("CHAP_A", "7,6,5")}, nil)
			if loginStatusOf(r) != 0 || m["CHAP_A"] != "5" {
				t.Fatalf("CHAP_A with a verifier: %v, want MD5 (5)", m)
			}
			id, _ := strconv.Atoi(m["CHAP_I"])
			ch, ok := decodeBinary(m["CHAP_C"])
			if !ok || len(ch) != 16 {
				t.Fatalf("challenge %q", m["CHAP_C"])
			}
			resp := chapResponse(chapHash(chapMD5), byte(id), tc.secret, ch)
			ic := bytes.Repeat([]byte{0x5a}, 16)
			r, m = in.loginPDU(true, 0, 1, []pdu.KV{kv("CHAP_N", "alice"), kv("CHAP_R", "0x"+hexs(resp)),
				kv("CHAP_I", "9"), kv("CHAP_C", "0x"+hexs(ic))}, nil)
			if got := loginStatusOf(r); got != tc.status {
				t.Fatalf("status 0x%04x, want 0x%04x", got, tc.status)
			}
			if tc.status != 0 {
				in.expectClosed()
				return
			}
			// Mutual CHAP still answers with the target's own secret.
			if want := "0x" + hexs(chapResponse(chapHash(chapMD5), 9, "targetsecret1", ic)); m["CHAP_R"] != want {
				t.Fatalf("mutual CHAP_R %q, want %q", m["CHAP_R"], want)
			}
		})
	}
}
