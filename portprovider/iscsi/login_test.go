package iscsi

import (
	"context"
	"fmt"
	"github.com/costar-project/costar/stmf"
	"strings"
	"testing"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

func TestLoginStateMachine(t *testing.T) {
	env := startServer(t, func(c *Config) {
		c.Auth = AuthFunc(func(_ context.Context, r AuthRequest) (CHAPCredentials, error) {
			if r.InitiatorName == "iqn.2026-01.test:needs-chap" {
				return CHAPCredentials{Required: true, InitiatorUser: "u", InitiatorSecret: "0123456789ab"}, nil
			}
			return CHAPCredentials{}, nil
		})
	})
	good := []pdu.KV{kv("InitiatorName", testInitiator), kv("TargetName", testTarget), kv("AuthMethod", "None")}
	tests := []struct {
		name     string
		steps    func(in *initiator) pdu.Header
		status   uint16
		stayOpen bool
	}{
		{name: "bad version", status: 0x0205, steps: func(in *initiator) pdu.Header {
			r, _ := in.loginPDU(true, 0, 1, good, func(h *pdu.Header) { h[2], h[3] = 2, 1 })
			return r
		}},
		{name: "full feature stage first", status: 0x0200, steps: func(in *initiator) pdu.Header {
			r, _ := in.loginPDU(true, 3, 3, good, nil)
			return r
		}},
		{name: "wrong stage after transit", status: 0x0200, steps: func(in *initiator) pdu.Header {
			in.loginPDU(true, 0, 1, good, nil)
			r, _ := in.loginPDU(true, 0, 1, nil, nil)
			return r
		}},
		{name: "backwards transition", status: 0x0200, steps: func(in *initiator) pdu.Header {
			r, _ := in.loginPDU(true, 1, 0, good, nil)
			return r
		}},
		{name: "T and C together", status: 0x0200, steps: func(in *initiator) pdu.Header {
			r, _ := in.loginPDU(true, 0, 1, good, func(h *pdu.Header) { h[1] |= pdu.FlagContinue })
			return r
		}},
		{name: "unknown target", status: 0x0203, steps: func(in *initiator) pdu.Header {
			r, _ := in.loginPDU(true, 0, 1, []pdu.KV{kv("InitiatorName", testInitiator), kv("TargetName", "iqn.2026-01.test:nope")}, nil)
			return r
		}},
		{name: "login PDU over 8192 bytes", status: 0x0200, steps: func(in *initiator) pdu.Header {
			// RFC 7143 12.12: 8192 bytes until MaxRecvDataSegmentLength
			// is negotiated; a larger segment is refused unread.
			pad := strings.Repeat("x", 8192)
			r, _ := in.loginPDU(true, 0, 1, append(good, kv("X-pad", pad)), nil)
			return r
		}},
		{name: "missing InitiatorName", status: 0x0207, steps: func(in *initiator) pdu.Header {
			r, _ := in.loginPDU(true, 0, 1, []pdu.KV{kv("TargetName", testTarget)}, nil)
			return r
		}},
		{name: "missing TargetName", status: 0x0207, steps: func(in *initiator) pdu.Header {
			r, _ := in.loginPDU(true, 0, 1, []pdu.KV{kv("InitiatorName", testInitiator)}, nil)
			return r
		}},
		{name: "bad session type", status: 0x0209, steps: func(in *initiator) pdu.Header {
			r, _ := in.loginPDU(true, 0, 1, append(good, kv("SessionType", "Weird")), nil)
			return r
		}},
		{name: "unknown TSIH", status: 0x020a, steps: func(in *initiator) pdu.Header {
			in.tsih = 77
			r, _ := in.loginPDU(true, 0, 1, good, nil)
			return r
		}},
		{name: "malformed text", status: 0x0200, steps: func(in *initiator) pdu.Header {
			var h pdu.Header
			h.SetOpcode(pdu.OpLoginReq, true)
			h.SetLoginFlags(true, false, 0, 1)
			if err := in.send(&h, nil, []byte("InitiatorName\x00")); err != nil {
				t.Fatal(err)
			}
			r, _, err := in.recv()
			if err != nil {
				t.Fatal(err)
			}
			return r
		}},
		{name: "non-login PDU during login", status: 0x020b, steps: func(in *initiator) pdu.Header {
			in.nopOut(1, pdu.ReservedTag, true, nil)
			r, _, err := in.recv()
			if err != nil {
				t.Fatal(err)
			}
			return r
		}},
		{name: "authentication required", status: 0x0201, steps: func(in *initiator) pdu.Header {
			r, _ := in.loginPDU(true, 0, 1, []pdu.KV{kv("InitiatorName", "iqn.2026-01.test:needs-chap"),
				kv("TargetName", testTarget), kv("AuthMethod", "None")}, nil)
			return r
		}},
		{name: "authentication required, security stage skipped", status: 0x0201, steps: func(in *initiator) pdu.Header {
			r, _ := in.loginPDU(true, 1, 3, []pdu.KV{kv("InitiatorName", "iqn.2026-01.test:needs-chap"),
				kv("TargetName", testTarget)}, nil)
			return r
		}},
		{name: "security stage skipped", status: 0, stayOpen: true, steps: func(in *initiator) pdu.Header {
			r, m := in.loginPDU(true, 1, 3, good[:2], nil)
			if m["MaxRecvDataSegmentLength"] == "" || m["TargetPortalGroupTag"] != "1" {
				t.Errorf("declarations missing: %v", m)
			}
			return r
		}},
		{name: "straight from security to full feature", status: 0, stayOpen: true, steps: func(in *initiator) pdu.Header {
			r, m := in.loginPDU(true, 0, 3, good, nil)
			if m["MaxRecvDataSegmentLength"] == "" || m["AuthMethod"] != "None" {
				t.Errorf("declarations missing: %v", m)
			}
			return r
		}},
		{name: "text continued over two PDUs", status: 0, stayOpen: true, steps: func(in *initiator) pdu.Header {
			txt := pdu.EncodeText(good)
			var h pdu.Header
			h.SetOpcode(pdu.OpLoginReq, true)
			h.SetLoginFlags(false, true, 0, 0)
			h.SetISID(in.isid)
			if err := in.send(&h, nil, txt[:10]); err != nil {
				t.Fatal(err)
			}
			if r, d, err := in.recv(); err != nil || len(d) != 0 || r.Final() || loginStatusOf(r) != 0 {
				t.Fatalf("continuation ack: %v", err)
			}
			h.SetLoginFlags(true, false, 0, 3)
			if err := in.send(&h, nil, txt[10:]); err != nil {
				t.Fatal(err)
			}
			r, _, err := in.recv()
			if err != nil {
				t.Fatal(err)
			}
			return r
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := dial(t, env.addr)
			r := tc.steps(in)
			if r.Opcode() != pdu.OpLoginResp {
				t.Fatalf("got %s", r.Opcode())
			}
			if got := loginStatusOf(r); got != tc.status {
				t.Fatalf("status 0x%04x, want 0x%04x", got, tc.status)
			}
			if r.ISID() != in.isid && tc.name != "malformed text" && tc.name != "non-login PDU during login" {
				t.Fatalf("ISID not echoed")
			}
			if tc.stayOpen {
				if r.TSIH() == 0 || !r.Final() {
					t.Fatalf("no TSIH/transit in final response")
				}
				return
			}
			in.expectClosed()
		})
	}
}

// A target the initiator may not see (no view for it) gets the status an
// unknown name gets, so names cannot be enumerated without credentials.
func TestMaskedTargetAnswersLikeUnknown(t *testing.T) {
	env := startServer(t, nil)
	if err := env.fw.RemoveView(env.lu.GUID(), stmf.ViewEntry{}); err != nil {
		t.Fatal(err)
	}
	if err := env.fw.CreateHostGroup("others"); err != nil {
		t.Fatal(err)
	}
	if err := env.fw.AddHostGroupMember("others", "iqn.2026-01.test:someone-else"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.fw.AddView(env.lu.GUID(), stmf.ViewEntry{HostGroup: "others"}, true); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{testTarget, "iqn.2026-01.test:nope"} {
		in := dial(t, env.addr)
		r, _ := in.loginPDU(true, 0, 1, []pdu.KV{kv("InitiatorName", testInitiator), kv("TargetName", target), kv("AuthMethod", "None")}, nil)
		if got := loginStatusOf(r); got != 0x0203 {
			t.Errorf("%s: status 0x%04x, want 0x0203 (not found)", target, got)
		}
		in.expectClosed()
	}
}

func TestCHAPLogin(t *testing.T) {
	env := startServer(t, func(c *Config) {
		c.Auth = AuthFunc(func(_ context.Context, r AuthRequest) (CHAPCredentials, error) {
			return CHAPCredentials{Required: true, InitiatorUser: "alice", InitiatorSecret: "0123456789ab"}, nil
		})
	})
	for _, secret := range []string{"0123456789ab", "wrong-secret"} {
		in := dial(t, env.addr)
		r, m := in.loginPDU(false, 0, 0, []pdu.KV{kv("InitiatorName", testInitiator), kv("TargetName", testTarget),
			kv("AuthMethod", "CHAP,None")}, nil)
		if loginStatusOf(r) != 0 || m["AuthMethod"] != "CHAP" {
			t.Fatalf("AuthMethod: %v", m)
		}
		r, m = in.loginPDU(false, 0, 0, []pdu.KV{kv("CHAP_A", "5")}, nil)
		if loginStatusOf(r) != 0 || m["CHAP_A"] != "5" || r.Final() {
			t.Fatalf("CHAP_A: %v", m)
		}
		var id int
		for _, c := range m["CHAP_I"] {
			id = id*10 + int(c-'0')
		}
		ch, ok := decodeBinary(m["CHAP_C"])
		if !ok {
			t.Fatal("bad challenge")
		}
		resp := chapResponse(chapHash(5), byte(id), secret, ch)
		r, _ = in.loginPDU(true, 0, 1, []pdu.KV{kv("CHAP_N", "alice"), kv("CHAP_R", "0x"+hexs(resp))}, nil)
		if secret == "wrong-secret" {
			if loginStatusOf(r) != 0x0201 {
				t.Fatalf("wrong secret: status 0x%04x", loginStatusOf(r))
			}
			in.expectClosed()
			continue
		}
		if loginStatusOf(r) != 0 || !r.Final() {
			t.Fatalf("CHAP_R: status 0x%04x", loginStatusOf(r))
		}
		r, _ = in.loginPDU(true, 1, 3, nil, nil)
		if loginStatusOf(r) != 0 || r.TSIH() == 0 {
			t.Fatal("final login failed")
		}
	}
}

// TestLoginLongAnswerSplit: a login carrying 1000 unknown keys (in request
// PDUs of at most 8192 bytes) is answered in parts of at most 8192 bytes
// with the C bit, each asked for with an empty request, and the login
// then completes.
func TestLoginLongAnswerSplit(t *testing.T) {
	env := startServer(t, nil)
	in := dial(t, env.addr)
	sec := []pdu.KV{kv("InitiatorName", testInitiator), kv("AuthMethod", "None"), kv("SessionType", "Normal"), kv("TargetName", testTarget)}
	if r, _ := in.loginPDU(true, pdu.StageSecurity, pdu.StageOperational, sec, nil); loginStatusOf(r) != 0 {
		t.Fatalf("security stage: 0x%04x", loginStatusOf(r))
	}
	var kvs []pdu.KV
	for i := 0; i < 1000; i++ {
		kvs = append(kvs, kv(fmt.Sprintf("UnknownKeyNumber%04d", i), "SomeValue"))
	}
	text := pdu.EncodeText(kvs)
	send := func(transit, cont bool, data []byte) {
		var h pdu.Header
		h.SetOpcode(pdu.OpLoginReq, true)
		h.SetLoginFlags(transit, cont, pdu.StageOperational, pdu.StageFullFeature)
		h.SetISID(in.isid)
		h.SetCID(1)
		h.SetU32(pdu.OffCmdSN, in.cmdSN)
		h.SetU32(pdu.OffExpStatSN, in.expStatSN)
		if err := in.send(&h, nil, data); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() (pdu.Header, []byte) {
		h, data, err := in.recv()
		if err != nil || h.Opcode() != pdu.OpLoginResp || loginStatusOf(h) != 0 {
			t.Fatalf("login response: %v %s 0x%04x", err, h.Opcode(), loginStatusOf(h))
		}
		if len(data) > loginMaxData {
			t.Fatalf("login response of %d bytes", len(data))
		}
		in.expStatSN = h.U32(pdu.OffStatSN) + 1
		return h, data
	}
	for len(text) > loginMaxData {
		send(false, true, text[:loginMaxData])
		text = text[loginMaxData:]
		if h, data := recv(); len(data) != 0 || h.Final() {
			t.Fatalf("acknowledgement of a request part: %d bytes, T=%v", len(data), h.Final())
		}
	}
	send(true, false, text)
	var answer []byte
	parts := 0
	for {
		h, data := recv()
		parts++
		answer = append(answer, data...)
		if h.Flags()&pdu.FlagContinue == 0 {
			if !h.Final() || h.TSIH() == 0 {
				t.Fatalf("last part: T=%v TSIH %d", h.Final(), h.TSIH())
			}
			break
		}
		if h.Final() {
			t.Fatal("C and T both set")
		}
		send(false, false, nil)
	}
	got, err := pdu.ParseText(answer)
	if err != nil {
		t.Fatal(err)
	}
	nu := 0
	for _, p := range got {
		if strings.HasPrefix(p.Key, "UnknownKeyNumber") && p.Value == "NotUnderstood" {
			nu++
		}
	}
	if nu != 1000 || parts < 4 {
		t.Fatalf("%d NotUnderstood answers in %d parts", nu, parts)
	}
	in.nopOut(in.nextITT(), pdu.ReservedTag, true, []byte("ping"))
	if _, d := in.expect(pdu.OpNOPIn); string(d) != "ping" {
		t.Fatalf("NOP-In %q", d)
	}
}
