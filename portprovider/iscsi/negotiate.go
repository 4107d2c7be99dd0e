package iscsi

import (
	"strconv"
	"strings"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

// Reserved answer values (RFC 7143 6.2).
const (
	valNotUnderstood = "NotUnderstood"
	valIrrelevant    = "Irrelevant"
	valReject        = "Reject"
)

// params are the negotiated session and connection parameters.
type params struct {
	HeaderDigest, DataDigest bool
	MaxConnections           uint32
	InitialR2T               bool
	ImmediateData            bool
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	DefaultTime2Wait         uint32
	DefaultTime2Retain       uint32
	MaxOutstandingR2T        uint32
	DataPDUInOrder           bool
	DataSequenceInOrder      bool
	ErrorRecoveryLevel       uint32
	// InitiatorRecvDSL is the initiator's MaxRecvDataSegmentLength: the
	// largest data segment we may send.
	InitiatorRecvDSL uint32
	// TargetRecvDSL is ours: the largest data segment we accept.
	TargetRecvDSL uint32
}

// rfcDefaults are the values in force for keys nobody negotiated.
func rfcDefaults(ourMRDSL uint32) params {
	return params{
		MaxConnections:      1,
		InitialR2T:          true,
		ImmediateData:       true,
		MaxBurstLength:      262144,
		FirstBurstLength:    65536,
		DefaultTime2Wait:    2,
		DefaultTime2Retain:  20,
		MaxOutstandingR2T:   1,
		DataPDUInOrder:      true,
		DataSequenceInOrder: true,
		InitiatorRecvDSL:    8192,
		TargetRecvDSL:       ourMRDSL,
	}
}

type keyKind uint8

const (
	kindDeclarative keyKind = iota // handled by the login layer or recorded; no answer
	kindDigest                     // list: CRC32C, None
	kindMin
	kindMax
	kindOr
	kindAnd
	kindIrrelevant    // obsolete or iSER-only: answer Irrelevant
	kindTargetDeclare // declared only by targets; from an initiator: Irrelevant
	kindList          // other lists: TaskReporting
	kindReject        // obsolete keys RFC 7143 13.26 answers Reject: IFMarkInt, OFMarkInt
)

type keyDef struct {
	kind    keyKind
	lo, hi  uint32
	leading bool // LO: login only, leading connection
	// loginOnly is RFC 7143's IO ("initialize only"): negotiated during
	// every connection's login, never in full feature phase, where a change
	// (digests switched on without the connection knowing) would break it.
	loginOnly   bool
	discIrrelev bool // Irrelevant when SessionType=Discovery
}

// lookupKey is the table of RFC 7143 (and 7144, 7145) keys. leading and
// loginOnly follow each key's "Use:" (LO and IO); both are rejected in
// full feature phase (TestKeyUseAudit checks the table against the RFC).
func lookupKey(k string) (keyDef, bool) {
	switch k {
	case "HeaderDigest", "DataDigest":
		return keyDef{kind: kindDigest, loginOnly: true}, true
	case "MaxConnections":
		return keyDef{kind: kindMin, lo: 1, hi: 65535, leading: true, discIrrelev: true}, true
	case "InitialR2T":
		return keyDef{kind: kindOr, leading: true, discIrrelev: true}, true
	case "ImmediateData":
		return keyDef{kind: kindAnd, leading: true, discIrrelev: true}, true
	case "MaxRecvDataSegmentLength":
		return keyDef{kind: kindDeclarative, lo: 512, hi: 1<<24 - 1}, true
	case "MaxBurstLength", "FirstBurstLength":
		return keyDef{kind: kindMin, lo: 512, hi: 1<<24 - 1, leading: true, discIrrelev: true}, true
	case "DefaultTime2Wait":
		return keyDef{kind: kindMax, lo: 0, hi: 3600, leading: true}, true
	case "DefaultTime2Retain":
		return keyDef{kind: kindMin, lo: 0, hi: 3600, leading: true}, true
	case "MaxOutstandingR2T":
		return keyDef{kind: kindMin, lo: 1, hi: 65535, leading: true, discIrrelev: true}, true
	case "DataPDUInOrder", "DataSequenceInOrder":
		return keyDef{kind: kindOr, leading: true, discIrrelev: true}, true
	case "ErrorRecoveryLevel":
		return keyDef{kind: kindMin, lo: 0, hi: 2, leading: true}, true
	case "iSCSIProtocolLevel":
		return keyDef{kind: kindMin, lo: 0, hi: 31, leading: true}, true
	case "IFMarker", "OFMarker":
		// Obsolete (RFC 7143 13.26): "No" is allowed; RFC 3720 had them IO.
		return keyDef{kind: kindAnd, loginOnly: true}, true
	case "IFMarkInt", "OFMarkInt":
		return keyDef{kind: kindReject, loginOnly: true}, true
	case "RDMAExtensions":
		return keyDef{kind: kindAnd, leading: true}, true
	case "TaskReporting":
		return keyDef{kind: kindList, leading: true}, true
	case "InitiatorRecvDataSegmentLength", "TargetRecvDataSegmentLength":
		// iSER only (RFC 7145 6.3): Irrelevant without RDMAExtensions.
		return keyDef{kind: kindIrrelevant, loginOnly: true}, true
	case "MaxOutstandingUnexpectedPDUs":
		return keyDef{kind: kindIrrelevant, leading: true}, true
	case "TargetAlias", "TargetAddress":
		return keyDef{kind: kindTargetDeclare}, true
	case "TargetPortalGroupTag": // IO, by the target
		return keyDef{kind: kindTargetDeclare, loginOnly: true}, true
	case "InitiatorName", "TargetName":
		// IO; the login layer reads them from the first request.
		return keyDef{kind: kindDeclarative, loginOnly: true}, true
	case "SessionType":
		return keyDef{kind: kindDeclarative, leading: true}, true
	case "AuthMethod", "CHAP_A", "CHAP_I", "CHAP_C", "CHAP_N", "CHAP_R":
		// Security negotiation only; the login layer handles them there.
		return keyDef{kind: kindDeclarative, loginOnly: true}, true
	case "InitiatorAlias": // ALL: may change in full feature phase
		return keyDef{kind: kindDeclarative}, true
	}
	return keyDef{}, false
}

// negotiator holds one session's negotiation state.
type negotiator struct {
	ours      *Config
	p         params
	discovery bool
	declared  bool // our MaxRecvDataSegmentLength went out
	iMRDSLSet bool
}

func newNegotiator(cfg *Config) *negotiator {
	return &negotiator{ours: cfg, p: rfcDefaults(cfg.MaxRecvDataSegmentLength)}
}

// parseNumber accepts decimal and 0x-hex numeric values.
func parseNumber(v string) (uint64, bool) {
	if v == "" || len(v) > 20 {
		return 0, false
	}
	if strings.HasPrefix(v, "0x") || strings.HasPrefix(v, "0X") {
		n, err := strconv.ParseUint(v[2:], 16, 64)
		return n, err == nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

func parseBool(v string) (bool, bool) {
	switch v {
	case "Yes":
		return true, true
	case "No":
		return false, true
	}
	return false, false
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func isReservedAnswer(v string) bool {
	return v == valNotUnderstood || v == valIrrelevant || v == valReject
}

// negotiate answers one request's operational keys. Security keys
// (AuthMethod, CHAP_*) must have been removed by the caller. ffp means a
// Text negotiation in full feature phase, where only keys usable in FFP
// are accepted.
func (n *negotiator) negotiate(kvs []pdu.KV, ffp bool) []pdu.KV {
	var resp []pdu.KV
	answer := func(k, v string) { resp = append(resp, pdu.KV{Key: k, Value: v}) }
	firstBurstAnswered := -1
	for _, kv := range kvs {
		k, v := kv.Key, kv.Value
		if isReservedAnswer(v) {
			continue // an answer to something we declared; nothing to do
		}
		def, known := lookupKey(k)
		if !known {
			answer(k, valNotUnderstood) // includes X- and X# vendor keys
			continue
		}
		if ffp && (def.leading || def.loginOnly) {
			answer(k, valReject)
			continue
		}
		if n.discovery && def.discIrrelev {
			answer(k, valIrrelevant)
			continue
		}
		switch def.kind {
		case kindDeclarative:
			if k == "MaxRecvDataSegmentLength" {
				x, ok := parseNumber(v)
				if !ok || x < uint64(def.lo) || x > uint64(def.hi) {
					answer(k, valReject)
					continue
				}
				n.p.InitiatorRecvDSL = uint32(x)
				n.iMRDSLSet = true
			}
			// InitiatorName, TargetName, SessionType, InitiatorAlias: login layer.
		case kindDigest:
			choice := ""
			for _, c := range strings.Split(v, ",") {
				if c == "None" || (c == "CRC32C" && !n.ours.DisableDigests) {
					choice = c
					break
				}
			}
			if choice == "" {
				answer(k, valReject)
				continue
			}
			if k == "HeaderDigest" {
				n.p.HeaderDigest = choice == "CRC32C"
			} else {
				n.p.DataDigest = choice == "CRC32C"
			}
			answer(k, choice)
		case kindMin, kindMax:
			x, ok := parseNumber(v)
			if !ok || x < uint64(def.lo) || x > uint64(def.hi) {
				answer(k, valReject)
				continue
			}
			ours := n.ourNumber(k)
			r := uint32(x)
			if def.kind == kindMin && ours < r || def.kind == kindMax && ours > r {
				r = ours
			}
			n.setNumber(k, r)
			if k == "FirstBurstLength" {
				firstBurstAnswered = len(resp)
			}
			answer(k, strconv.FormatUint(uint64(r), 10))
		case kindOr, kindAnd:
			b, ok := parseBool(v)
			if !ok {
				answer(k, valReject)
				continue
			}
			ours := n.ourBool(k)
			r := b || ours
			if def.kind == kindAnd {
				r = b && ours
			}
			n.setBool(k, r)
			answer(k, yesNo(r))
		case kindList: // TaskReporting: we only do RFC3720 semantics
			found := false
			for _, c := range strings.Split(v, ",") {
				found = found || c == "RFC3720"
			}
			if found {
				answer(k, "RFC3720")
			} else {
				answer(k, valReject)
			}
		case kindIrrelevant, kindTargetDeclare:
			answer(k, valIrrelevant)
		case kindReject:
			answer(k, valReject)
		}
	}
	// FirstBurstLength may not exceed MaxBurstLength, whatever order the
	// keys came in.
	if n.p.FirstBurstLength > n.p.MaxBurstLength {
		n.p.FirstBurstLength = n.p.MaxBurstLength
		if firstBurstAnswered >= 0 {
			resp[firstBurstAnswered].Value = strconv.FormatUint(uint64(n.p.FirstBurstLength), 10)
		}
	}
	return resp
}

// declaration returns our declarative keys once.
func (n *negotiator) declaration() []pdu.KV {
	if n.declared {
		return nil
	}
	n.declared = true
	return []pdu.KV{{Key: "MaxRecvDataSegmentLength", Value: strconv.FormatUint(uint64(n.ours.MaxRecvDataSegmentLength), 10)}}
}

func (n *negotiator) ourNumber(k string) uint32 {
	c := n.ours
	switch k {
	case "MaxConnections":
		return c.MaxConnections
	case "MaxBurstLength":
		return c.MaxBurstLength
	case "FirstBurstLength":
		return c.FirstBurstLength
	case "DefaultTime2Wait":
		return c.DefaultTime2Wait
	case "DefaultTime2Retain":
		return c.DefaultTime2Retain
	case "MaxOutstandingR2T":
		return c.MaxOutstandingR2T
	case "ErrorRecoveryLevel":
		return 0
	case "iSCSIProtocolLevel":
		return 1
	}
	return 0
}

func (n *negotiator) setNumber(k string, v uint32) {
	p := &n.p
	switch k {
	case "MaxConnections":
		p.MaxConnections = v
	case "MaxBurstLength":
		p.MaxBurstLength = v
	case "FirstBurstLength":
		p.FirstBurstLength = v
	case "DefaultTime2Wait":
		p.DefaultTime2Wait = v
	case "DefaultTime2Retain":
		p.DefaultTime2Retain = v
	case "MaxOutstandingR2T":
		p.MaxOutstandingR2T = v
	case "ErrorRecoveryLevel":
		p.ErrorRecoveryLevel = v
	}
}

func (n *negotiator) ourBool(k string) bool {
	switch k {
	case "InitialR2T":
		return *n.ours.InitialR2T
	case "ImmediateData":
		return *n.ours.ImmediateData
	case "DataPDUInOrder", "DataSequenceInOrder":
		return true
	}
	return false // markers, RDMAExtensions
}

func (n *negotiator) setBool(k string, v bool) {
	p := &n.p
	switch k {
	case "InitialR2T":
		p.InitialR2T = v
	case "ImmediateData":
		p.ImmediateData = v
	case "DataPDUInOrder":
		p.DataPDUInOrder = v
	case "DataSequenceInOrder":
		p.DataSequenceInOrder = v
	}
}
