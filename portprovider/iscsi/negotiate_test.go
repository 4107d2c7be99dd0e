package iscsi

import (
	"testing"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

func testConfig(t *testing.T, mod func(*Config)) *Config {
	t.Helper()
	c := Config{}
	if mod != nil {
		mod(&c)
	}
	d, err := c.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return &d
}

func TestNegotiationTable(t *testing.T) {
	tests := []struct {
		name      string
		mod       func(*Config)
		discovery bool
		ffp       bool
		in        []pdu.KV
		want      map[string]string // expected answers; "" = no answer
		check     func(t *testing.T, p params)
	}{
		{name: "digest list picks initiator's first supported",
			in:   []pdu.KV{kv("HeaderDigest", "CRC32C,None"), kv("DataDigest", "None,CRC32C")},
			want: map[string]string{"HeaderDigest": "CRC32C", "DataDigest": "None"},
			check: func(t *testing.T, p params) {
				if !p.HeaderDigest || p.DataDigest {
					t.Fatalf("digests %v %v", p.HeaderDigest, p.DataDigest)
				}
			}},
		{name: "digests disabled", mod: func(c *Config) { c.DisableDigests = true },
			in:   []pdu.KV{kv("HeaderDigest", "CRC32C,None"), kv("DataDigest", "CRC32C")},
			want: map[string]string{"HeaderDigest": "None", "DataDigest": "Reject"}},
		{name: "min numbers",
			in: []pdu.KV{kv("MaxBurstLength", "0x100000"), kv("FirstBurstLength", "65536"), kv("MaxOutstandingR2T", "1"),
				kv("MaxConnections", "8"), kv("ErrorRecoveryLevel", "2"), kv("DefaultTime2Retain", "20")},
			want: map[string]string{"MaxBurstLength": "1048576", "FirstBurstLength": "65536", "MaxOutstandingR2T": "1",
				"MaxConnections": "1", "ErrorRecoveryLevel": "0", "DefaultTime2Retain": "0"}},
		{name: "max number", in: []pdu.KV{kv("DefaultTime2Wait", "0")}, want: map[string]string{"DefaultTime2Wait": "2"}},
		{name: "first burst clamped to max burst",
			in:   []pdu.KV{kv("FirstBurstLength", "262144"), kv("MaxBurstLength", "16384")},
			want: map[string]string{"FirstBurstLength": "16384", "MaxBurstLength": "16384"}},
		{name: "booleans OR and AND",
			in:   []pdu.KV{kv("InitialR2T", "No"), kv("ImmediateData", "Yes"), kv("DataPDUInOrder", "No"), kv("DataSequenceInOrder", "No")},
			want: map[string]string{"InitialR2T": "No", "ImmediateData": "Yes", "DataPDUInOrder": "Yes", "DataSequenceInOrder": "Yes"}},
		{name: "our InitialR2T=Yes wins the OR, our ImmediateData=No wins the AND",
			mod:  func(c *Config) { y, n := true, false; c.InitialR2T, c.ImmediateData = &y, &n },
			in:   []pdu.KV{kv("InitialR2T", "No"), kv("ImmediateData", "Yes")},
			want: map[string]string{"InitialR2T": "Yes", "ImmediateData": "No"}},
		{name: "declarative MaxRecvDataSegmentLength is recorded, not answered",
			in:   []pdu.KV{kv("MaxRecvDataSegmentLength", "4096")},
			want: map[string]string{"MaxRecvDataSegmentLength": ""},
			check: func(t *testing.T, p params) {
				if p.InitiatorRecvDSL != 4096 {
					t.Fatalf("initiator MRDSL %d", p.InitiatorRecvDSL)
				}
			}},
		{name: "bad values are rejected",
			in: []pdu.KV{kv("MaxBurstLength", "100"), kv("InitialR2T", "maybe"), kv("MaxRecvDataSegmentLength", "x"),
				kv("ErrorRecoveryLevel", "3"), kv("HeaderDigest", "MD5"), kv("DefaultTime2Wait", "99999999999999999999999")},
			want: map[string]string{"MaxBurstLength": "Reject", "InitialR2T": "Reject", "MaxRecvDataSegmentLength": "Reject",
				"ErrorRecoveryLevel": "Reject", "HeaderDigest": "Reject", "DefaultTime2Wait": "Reject"}},
		{name: "unknown and vendor keys",
			in:   []pdu.KV{kv("FooBar", "1"), kv("X-com.example.thing", "y"), kv("X#org.example", "z")},
			want: map[string]string{"FooBar": "NotUnderstood", "X-com.example.thing": "NotUnderstood", "X#org.example": "NotUnderstood"}},
		{name: "obsolete and iSER keys",
			in:   []pdu.KV{kv("IFMarker", "Yes"), kv("OFMarkInt", "2048~8192"), kv("RDMAExtensions", "Yes"), kv("TargetAlias", "x")},
			want: map[string]string{"IFMarker": "No", "OFMarkInt": "Reject", "RDMAExtensions": "No", "TargetAlias": "Irrelevant"}},
		{name: "discovery makes session keys irrelevant", discovery: true,
			in:   []pdu.KV{kv("MaxBurstLength", "512"), kv("InitialR2T", "Yes"), kv("HeaderDigest", "None"), kv("ErrorRecoveryLevel", "0")},
			want: map[string]string{"MaxBurstLength": "Irrelevant", "InitialR2T": "Irrelevant", "HeaderDigest": "None", "ErrorRecoveryLevel": "0"}},
		{name: "leading-only keys in full feature phase are rejected", ffp: true,
			in:   []pdu.KV{kv("MaxBurstLength", "512"), kv("MaxRecvDataSegmentLength", "16384")},
			want: map[string]string{"MaxBurstLength": "Reject", "MaxRecvDataSegmentLength": ""}},
		{name: "digests are login-only: rejected in full feature phase and left off", ffp: true,
			in:   []pdu.KV{kv("HeaderDigest", "CRC32C"), kv("DataDigest", "CRC32C,None"), kv("InitiatorAlias", "esx1")},
			want: map[string]string{"HeaderDigest": "Reject", "DataDigest": "Reject", "InitiatorAlias": ""},
			check: func(t *testing.T, p params) {
				if p.HeaderDigest || p.DataDigest {
					t.Errorf("digests switched on in full feature phase: %+v", p)
				}
			}},
		{name: "answers to our declarations are not answered",
			in:   []pdu.KV{kv("MaxRecvDataSegmentLength", "NotUnderstood")},
			want: map[string]string{"MaxRecvDataSegmentLength": ""}},
		{name: "protocol level and task reporting",
			in:   []pdu.KV{kv("iSCSIProtocolLevel", "2"), kv("TaskReporting", "FastAbort,RFC3720")},
			want: map[string]string{"iSCSIProtocolLevel": "1", "TaskReporting": "RFC3720"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNegotiator(testConfig(t, tc.mod))
			n.discovery = tc.discovery
			got := map[string]string{}
			for _, kv := range n.negotiate(tc.in, tc.ffp) {
				if _, dup := got[kv.Key]; dup {
					t.Fatalf("key %s answered twice", kv.Key)
				}
				got[kv.Key] = kv.Value
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: got %q, want %q", k, got[k], v)
				}
			}
			if tc.check != nil {
				tc.check(t, n.p)
			}
		})
	}
}

func TestNegotiatorDefaults(t *testing.T) {
	n := newNegotiator(testConfig(t, nil))
	p := n.p
	if !p.InitialR2T || !p.ImmediateData || p.MaxBurstLength != 262144 || p.FirstBurstLength != 65536 ||
		p.MaxOutstandingR2T != 1 || p.InitiatorRecvDSL != 8192 || p.TargetRecvDSL != DefaultMaxRecvDataSegmentLength {
		t.Fatalf("RFC defaults wrong: %+v", p)
	}
	d := n.declaration()
	if len(d) != 1 || d[0].Key != "MaxRecvDataSegmentLength" || d[0].Value != "262144" {
		t.Fatalf("declaration %v", d)
	}
	if len(n.declaration()) != 0 {
		t.Fatal("declared twice")
	}
}

func TestConfigValidation(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"mrdsl":       func(c *Config) { c.MaxRecvDataSegmentLength = 100 },
		"first>max":   func(c *Config) { c.MaxBurstLength = 4096; c.FirstBurstLength = 8192 },
		"queue depth": func(c *Config) { c.QueueDepth = 4 },
		"t2w":         func(c *Config) { c.DefaultTime2Wait = 4000 },
	} {
		c := Config{}
		mod(&c)
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCHAP(t *testing.T) {
	creds := CHAPCredentials{Required: true, InitiatorUser: "alice", InitiatorSecret: "secret-one-12",
		TargetUser: "tgt", TargetSecret: "secret-two-34"}
	a := &chapState{creds: creds}
	r, done, fail := a.handle(map[string]string{"CHAP_A": "7,5"})
	if fail != "" || done || len(r) != 3 || r[0].Value != "7" {
		t.Fatalf("challenge: %v %v %q", r, done, fail)
	}
	resp := chapResponse(chapHash(7), a.id, creds.InitiatorSecret, a.challenge)
	ic := []byte("0123456789abcdef")
	r, done, fail = a.handle(map[string]string{"CHAP_N": "alice", "CHAP_R": "0x" + hexs(resp), "CHAP_I": "9", "CHAP_C": "0x" + hexs(ic)})
	if fail != "" || !done || len(r) != 2 {
		t.Fatalf("response: %v %v %q", r, done, fail)
	}
	want := chapResponse(chapHash(7), 9, creds.TargetSecret, ic)
	if r[1].Value != "0x"+hexs(want) || r[0].Value != "tgt" {
		t.Fatalf("mutual answer %v", r)
	}
	b := &chapState{creds: creds}
	b.handle(map[string]string{"CHAP_A": "5"})
	if _, _, fail := b.handle(map[string]string{"CHAP_N": "alice", "CHAP_R": "0x00"}); fail == "" {
		t.Fatal("wrong response accepted")
	}
	c := &chapState{creds: creds}
	if _, _, fail := c.handle(map[string]string{"CHAP_A": "1,2"}); fail == "" {
		t.Fatal("unsupported algorithm accepted")
	}
}

func hexs(b []byte) string {
	const x = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, x[c>>4], x[c&15])
	}
	return string(out)
}

// FuzzTextKeys runs arbitrary text through the key parser and the
// negotiation table in every mode: nothing may panic and the negotiated
// values must stay within their legal ranges.
func FuzzTextKeys(f *testing.F) {
	f.Add([]byte("HeaderDigest=CRC32C,None\x00MaxBurstLength=0x100000\x00FirstBurstLength=999999\x00"), false, false)
	f.Add([]byte("InitialR2T=No\x00X-a=b\x00MaxRecvDataSegmentLength=512\x00"), true, false)
	f.Add([]byte("SendTargets=All\x00MaxRecvDataSegmentLength=65536\x00"), false, true)
	cfg := Config{}
	d, err := cfg.withDefaults()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte, discovery, ffp bool) {
		kvs, err := pdu.ParseText(b)
		if err != nil {
			return
		}
		n := newNegotiator(&d)
		n.discovery = discovery
		resp := n.negotiate(kvs, ffp)
		if len(resp) > len(kvs) {
			t.Fatalf("%d answers for %d keys", len(resp), len(kvs))
		}
		p := n.p
		if p.FirstBurstLength > p.MaxBurstLength || p.MaxBurstLength > d.MaxBurstLength ||
			p.InitiatorRecvDSL < 512 || p.InitiatorRecvDSL > 1<<24-1 || p.MaxOutstandingR2T < 1 ||
			p.ErrorRecoveryLevel != 0 || p.MaxConnections != 1 {
			t.Fatalf("out of range: %+v", p)
		}
		_ = pdu.EncodeText(resp)
	})
}

func kv(k, v string) pdu.KV { return pdu.KV{Key: k, Value: v} }

// TestKeyUseAudit checks every key of RFC 7143 section 13 (and RFC 7144,
// 7145) against its "Use:": LO and IO keys are answered Reject in full
// feature phase, ALL and FFP keys are not; the table's leading/loginOnly
// flags say the same; and a login (leading connection) does not reject
// them, except the obsolete IFMarkInt/OFMarkInt (13.26: MUST Reject).
func TestKeyUseAudit(t *testing.T) {
	for _, tc := range []struct {
		key, use, value string
		loginAnswer     string // "" (no answer), or the expected answer during login; "*" any but Reject
	}{
		{"HeaderDigest", "IO", "None", "None"},
		{"DataDigest", "IO", "None", "None"},
		{"MaxConnections", "LO", "1", "1"},
		{"TargetName", "IO", testTarget, ""},
		{"InitiatorName", "IO", testInitiator, ""},
		{"TargetAlias", "ALL", "x", "Irrelevant"},         // declared by targets only
		{"InitiatorAlias", "ALL", "host", ""},             // declarative
		{"TargetAddress", "ALL", "1.2.3.4", "Irrelevant"}, // declared by targets only
		{"TargetPortalGroupTag", "IO", "1", "Irrelevant"}, // declared by targets only
		{"InitialR2T", "LO", "Yes", "Yes"},
		{"ImmediateData", "LO", "Yes", "Yes"},
		{"MaxRecvDataSegmentLength", "ALL", "65536", ""},
		{"MaxBurstLength", "LO", "262144", "262144"},
		{"FirstBurstLength", "LO", "65536", "65536"},
		{"DefaultTime2Wait", "LO", "2", "2"},
		{"DefaultTime2Retain", "LO", "0", "0"},
		{"MaxOutstandingR2T", "LO", "1", "1"},
		{"DataPDUInOrder", "LO", "Yes", "Yes"},
		{"DataSequenceInOrder", "LO", "Yes", "Yes"},
		{"ErrorRecoveryLevel", "LO", "0", "0"},
		{"SessionType", "LO", "Normal", ""},
		{"AuthMethod", "IO", "None", ""}, // security stage only
		{"CHAP_A", "IO", "5", ""},
		{"TaskReporting", "LO", "RFC3720", "RFC3720"}, // RFC 7144
		{"iSCSIProtocolLevel", "LO", "1", "1"},        // RFC 7144
		{"IFMarker", "IO", "No", "No"},                // obsolete, RFC 3720 IO
		{"OFMarker", "IO", "No", "No"},                // obsolete, RFC 3720 IO
		{"IFMarkInt", "IO", "2048", "Reject"},         // obsolete: MUST Reject
		{"OFMarkInt", "IO", "2048", "Reject"},         // obsolete: MUST Reject
		{"RDMAExtensions", "LO", "No", "No"},          // RFC 7145
		{"InitiatorRecvDataSegmentLength", "IO", "8192", "Irrelevant"},
		{"TargetRecvDataSegmentLength", "IO", "8192", "Irrelevant"},
		{"MaxOutstandingUnexpectedPDUs", "LO", "0", "Irrelevant"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			def, ok := lookupKey(tc.key)
			if !ok {
				t.Fatal("key missing from the table")
			}
			wantLO, wantIO := tc.use == "LO", tc.use == "IO"
			if def.leading != wantLO || def.loginOnly != wantIO {
				t.Errorf("table: leading=%v loginOnly=%v, RFC Use %s", def.leading, def.loginOnly, tc.use)
			}
			cfg, _ := (&Config{}).withDefaults()
			answerOf := func(ffp bool) string {
				n := newNegotiator(&cfg)
				for _, a := range n.negotiate([]pdu.KV{kv(tc.key, tc.value)}, ffp) {
					if a.Key == tc.key {
						return a.Value
					}
				}
				return ""
			}
			got := answerOf(true)
			if (wantLO || wantIO) != (got == valReject) {
				t.Errorf("full feature phase: %s=%s answered %q (Use %s)", tc.key, tc.value, got, tc.use)
			}
			if got := answerOf(false); got != tc.loginAnswer {
				t.Errorf("login: %s=%s answered %q, want %q", tc.key, tc.value, got, tc.loginAnswer)
			}
		})
	}
}
