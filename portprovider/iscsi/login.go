package iscsi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
	"github.com/costar-project/costar/stmf"
)

// loginStatus is a Login Response status class (high byte) and detail.
type loginStatus uint16

// Login status codes (RFC 7143 11.13.5).
const (
	statusSuccess             loginStatus = 0x0000
	statusInitiatorError      loginStatus = 0x0200
	statusAuthFailure         loginStatus = 0x0201
	statusForbidden           loginStatus = 0x0202
	statusNotFound            loginStatus = 0x0203
	statusTargetRemoved       loginStatus = 0x0204
	statusUnsupportedVersion  loginStatus = 0x0205
	statusTooManyConnections  loginStatus = 0x0206
	statusMissingParameter    loginStatus = 0x0207
	statusCantIncludeInSess   loginStatus = 0x0208
	statusSessionTypeUnsupp   loginStatus = 0x0209
	statusSessionDoesNotExist loginStatus = 0x020a
	statusInvalidDuringLogin  loginStatus = 0x020b
	statusTargetError         loginStatus = 0x0300
	statusServiceUnavailable  loginStatus = 0x0301
	statusOutOfResources      loginStatus = 0x0302
)

// loginError is a failed login with the status to report.
type loginError struct {
	status loginStatus
	msg    string
}

func (e *loginError) Error() string {
	return fmt.Sprintf("login status 0x%04x: %s", uint16(e.status), e.msg)
}

func lerr(st loginStatus, format string, a ...any) *loginError {
	return &loginError{status: st, msg: fmt.Sprintf(format, a...)}
}

// loginMaxData is the largest data segment of a login PDU: RFC 7143
// 12.12 holds both sides to 8192 bytes until MaxRecvDataSegmentLength is
// negotiated, so a larger one is refused before anything is allocated.
const loginMaxData = 8192

// maxLoginText bounds the text of one login request spread over several
// PDUs with the C bit.
const maxLoginText = 64 << 10

// loginState is the target side of one connection's login phase.
type loginState struct {
	first     bool
	stage     uint8 // CSG we expect next
	isid      [6]byte
	tsih      uint16
	itt       uint32
	cid       uint16
	cmdSN     uint32
	statSN    uint32
	text      []byte // C-bit accumulation
	initiator string
	alias     string
	tname     string
	discovery bool
	tgt       *target
	grp       *tgroup // the target's portal group this connection reaches
	talias    string  // TargetAlias to announce
	local     *net.TCPAddr

	creds      CHAPCredentials
	authMethod string // "", "None", "CHAP"
	chap       *chapState
	authDone   bool
	sentTPGT   bool

	// An answer longer than loginMaxData goes out in parts with the C
	// bit; the initiator asks for each next part with an empty request.
	answer *pendingAnswer
}

// pendingAnswer is the rest of a Login Response sent in parts.
type pendingAnswer struct {
	rest     []byte
	transit  bool
	csg, nsg uint8
	neg      *negotiator // set when the last part finishes the login
}

// login runs the login phase on c. On success c.sess is set, the session
// is registered and the final Login Response has been written.
func (c *conn) login() error {
	st := &loginState{first: true}
	neg := newNegotiator(&c.srv.cfg)
	var h pdu.Header
	for {
		if _, err := c.rd.ReadHeader(&h); err != nil {
			if errors.Is(err, pdu.ErrDataTooLong) && h.Opcode() == pdu.OpLoginReq {
				c.sendLoginReject(st, &h, lerr(statusInitiatorError, "login data segment too long"))
			}
			return err
		}
		if h.Opcode() != pdu.OpLoginReq {
			le := lerr(statusInvalidDuringLogin, "%s during login", h.Opcode())
			c.sendLoginReject(st, &h, le)
			return le
		}
		data := make([]byte, h.DataSegmentLength())
		if err := c.rd.ReadData(&h, data); err != nil {
			return err
		}
		done, err := c.loginStep(st, neg, &h, data)
		if err != nil {
			var le *loginError
			if errors.As(err, &le) {
				c.sendLoginReject(st, &h, le)
			}
			return err
		}
		if done {
			return nil
		}
	}
}

// loginStep handles one Login Request PDU.
func (c *conn) loginStep(st *loginState, neg *negotiator, h *pdu.Header, data []byte) (bool, error) {
	if st.first {
		st.isid, st.tsih, st.itt, st.cid = h.ISID(), h.TSIH(), h.ITT(), h.CID()
		st.cmdSN = h.U32(pdu.OffCmdSN)
		st.statSN = h.U32(pdu.OffExpStatSN)
		vmax, vmin := h[2], h[3]
		if vmin > 0 || vmax < vmin {
			return false, lerr(statusUnsupportedVersion, "version range %d..%d, we speak 0", vmin, vmax)
		}
	} else if h.ISID() != st.isid || h.TSIH() != st.tsih || h.CID() != st.cid {
		return false, lerr(statusInitiatorError, "ISID/TSIH/CID changed during login")
	}
	transit := h.Flags()&pdu.FlagFinal != 0
	cont := h.Flags()&pdu.FlagContinue != 0
	csg, nsg := h.LoginStages()
	if st.answer != nil {
		return c.nextAnswerPart(st, h, len(data))
	}
	if transit && cont {
		return false, lerr(statusInitiatorError, "T and C both set")
	}
	if csg == 2 || csg == pdu.StageFullFeature {
		return false, lerr(statusInitiatorError, "invalid current stage %d", csg)
	}
	if st.first {
		if csg != pdu.StageSecurity && csg != pdu.StageOperational {
			return false, lerr(statusInitiatorError, "invalid first stage %d", csg)
		}
		st.stage = csg
	} else if csg != st.stage {
		return false, lerr(statusInitiatorError, "stage %d, expected %d", csg, st.stage)
	}
	if transit && (nsg == 2 || nsg <= csg) {
		return false, lerr(statusInitiatorError, "invalid transition %d -> %d", csg, nsg)
	}
	if len(st.text)+len(data) > maxLoginText {
		return false, lerr(statusInitiatorError, "login text too long")
	}
	st.text = append(st.text, data...)
	if cont {
		// More text follows: acknowledge with an empty response.
		return false, c.writeLoginResp(st, false, csg, 0, 0, nil)
	}
	kvs, err := pdu.ParseText(st.text)
	st.text = st.text[:0]
	if err != nil {
		return false, lerr(statusInitiatorError, "%v", err)
	}
	if st.first {
		if le := c.loginFirst(st, neg, kvs); le != nil {
			return false, le
		}
		st.first = false
	}
	var resp []pdu.KV
	if !st.sentTPGT && !st.discovery {
		st.sentTPGT = true
		resp = append(resp, pdu.KV{Key: "TargetPortalGroupTag", Value: strconv.Itoa(int(st.grp.tag))})
		if st.talias != "" {
			resp = append(resp, pdu.KV{Key: "TargetAlias", Value: st.talias})
		}
	}
	// Split security keys from operational ones.
	sec := map[string]string{}
	var op []pdu.KV
	for _, kv := range kvs {
		switch {
		case kv.Key == "AuthMethod" || strings.HasPrefix(kv.Key, "CHAP_"):
			if csg != pdu.StageSecurity {
				resp = append(resp, pdu.KV{Key: kv.Key, Value: valIrrelevant})
				continue
			}
			sec[kv.Key] = kv.Value
		case kv.Key == "InitiatorName" || kv.Key == "TargetName" || kv.Key == "SessionType" || kv.Key == "InitiatorAlias":
			// Taken from the first PDU; later copies are ignored.
		default:
			op = append(op, kv)
		}
	}
	if csg == pdu.StageSecurity {
		r, le := c.securityStep(st, sec)
		if le != nil {
			return false, le
		}
		resp = append(resp, r...)
	}
	resp = append(resp, neg.negotiate(op, false)...)

	// Decide whether to honour the transit request.
	if !st.authDone {
		switch {
		case csg == pdu.StageSecurity && st.authMethod == "CHAP":
			transit = false // the exchange is still running
		case st.creds.Required && (transit || csg != pdu.StageSecurity):
			return false, lerr(statusAuthFailure, "authentication required")
		case transit || csg != pdu.StageSecurity:
			st.authDone = true // no authentication needed
		}
	}
	if transit && nsg == pdu.StageFullFeature || csg == pdu.StageOperational {
		resp = append(resp, neg.declaration()...)
	}
	if !transit {
		nsg = 0
	}
	text := pdu.EncodeText(resp)
	if len(text) > loginMaxData {
		// Nothing may exceed 8192 bytes during login (RFC 7143 12.12):
		// send the answer in parts (C bit), the stage change with the last.
		st.answer = &pendingAnswer{rest: text[loginMaxData:], transit: transit, csg: csg, nsg: nsg}
		if transit && nsg == pdu.StageFullFeature {
			st.answer.neg = neg
		}
		return false, c.writeLoginRespFlags(st, false, true, csg, 0, 0, text[:loginMaxData])
	}
	return c.endLoginStep(st, neg, transit, csg, nsg, text)
}

// endLoginStep sends the (last part of the) answer to a login request and
// moves to the next stage, or to full feature phase.
func (c *conn) endLoginStep(st *loginState, neg *negotiator, transit bool, csg, nsg uint8, text []byte) (bool, error) {
	if transit && nsg == pdu.StageFullFeature {
		return true, c.finishLogin(st, neg, text)
	}
	if err := c.writeLoginResp(st, transit, csg, nsg, 0, text); err != nil {
		return false, err
	}
	if transit {
		st.stage = nsg
	}
	return false, nil
}

// nextAnswerPart answers the empty Login Request that asks for the next
// part of a long answer.
func (c *conn) nextAnswerPart(st *loginState, h *pdu.Header, n int) (bool, error) {
	a := st.answer
	csg, _ := h.LoginStages()
	// The T bit is not checked: initiators may repeat their request's.
	if n != 0 || h.Flags()&pdu.FlagContinue != 0 || csg != a.csg {
		return false, lerr(statusInitiatorError, "expected an empty Login Request for the rest of the answer")
	}
	if len(a.rest) > loginMaxData {
		part := a.rest[:loginMaxData]
		a.rest = a.rest[loginMaxData:]
		return false, c.writeLoginRespFlags(st, false, true, a.csg, 0, 0, part)
	}
	st.answer = nil
	return c.endLoginStep(st, a.neg, a.transit, a.csg, a.nsg, a.rest)
}

// loginFirst validates the names and the session type of the leading
// login request.
func (c *conn) loginFirst(st *loginState, neg *negotiator, kvs []pdu.KV) *loginError {
	get := func(k string) (string, bool) {
		for _, kv := range kvs {
			if kv.Key == k {
				return kv.Value, true
			}
		}
		return "", false
	}
	in, ok := get("InitiatorName")
	if !ok || in == "" {
		return lerr(statusMissingParameter, "InitiatorName missing")
	}
	if !validName(in) {
		return lerr(statusInitiatorError, "invalid InitiatorName %q", in)
	}
	// iSCSI names compare case-insensitively (RFC 3722): host group
	// members, initiator contexts and session identities use one form.
	in = CanonicalName(in)
	st.initiator = in
	st.alias, _ = get("InitiatorAlias")
	stype, ok := get("SessionType")
	if !ok {
		stype = "Normal"
	}
	switch stype {
	case "Normal":
	case "Discovery":
		st.discovery = true
	default:
		return lerr(statusSessionTypeUnsupp, "SessionType %q", stype)
	}
	neg.discovery = st.discovery
	if st.tsih != 0 {
		// Adding a connection to an existing session.
		ss := c.srv.sessionByTSIH(st.tsih)
		if ss == nil || ss.initiator != in || ss.key.isid != st.isid {
			return lerr(statusSessionDoesNotExist, "no session with TSIH %d", st.tsih)
		}
		return lerr(statusTooManyConnections, "MaxConnections=1")
	}
	if !st.discovery {
		tn, ok := get("TargetName")
		if !ok || tn == "" {
			return lerr(statusMissingParameter, "TargetName missing")
		}
		st.tgt = c.srv.lookupTarget(tn)
		if st.tgt == nil {
			return lerr(statusNotFound, "no target %q", tn)
		}
		st.tname = st.tgt.name
		// A target is reachable only through the portals of the portal
		// groups it is bound to. Elsewhere it does not exist "at this
		// address" (RFC 7143 11.13.5, 0203h), the answer an unknown name
		// gets, so a portal reveals nothing about other groups' targets.
		st.local, _ = c.nc.LocalAddr().(*net.TCPAddr)
		st.grp, st.talias = c.srv.loginGroup(st.tgt, st.local)
		if st.grp == nil {
			return lerr(statusNotFound, "target %s is not served on portal %v", st.tname, c.nc.LocalAddr())
		}
		if !c.srv.fw.CanAccess(in, st.tname) {
			// The same answer an unknown name gets, before any
			// authentication: target names cannot be enumerated by
			// telling masked ones from missing ones. The log keeps why.
			return lerr(statusNotFound, "initiator %s may not access %s (no view)", in, st.tname)
		}
	}
	c.srv.mu.Lock()
	closing := c.srv.closing
	c.srv.mu.Unlock()
	if closing {
		return lerr(statusServiceUnavailable, "shutting down")
	}
	if a := c.srv.cfg.Auth; a != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		creds, err := a.CHAP(ctx, AuthRequest{InitiatorName: in, TargetName: st.tname, Discovery: st.discovery, RemoteAddr: c.nc.RemoteAddr()})
		cancel()
		if err != nil {
			return lerr(statusTargetError, "authenticator: %v", err)
		}
		st.creds = creds
	}
	return nil
}

// securityStep handles AuthMethod and the CHAP exchange.
func (c *conn) securityStep(st *loginState, sec map[string]string) ([]pdu.KV, *loginError) {
	var resp []pdu.KV
	if offer, ok := sec["AuthMethod"]; ok {
		if st.authMethod != "" {
			return nil, lerr(statusInitiatorError, "AuthMethod offered twice")
		}
		var hasNone, hasCHAP bool
		for _, m := range strings.Split(offer, ",") {
			hasNone = hasNone || m == "None"
			hasCHAP = hasCHAP || m == "CHAP"
		}
		switch {
		case !st.creds.Required && hasNone:
			st.authMethod = "None"
		case hasCHAP && st.creds.canCHAP():
			st.authMethod = "CHAP"
			st.chap = &chapState{creds: st.creds}
		default:
			return nil, lerr(statusAuthFailure, "no acceptable AuthMethod in %q", offer)
		}
		resp = append(resp, pdu.KV{Key: "AuthMethod", Value: st.authMethod})
		if st.authMethod == "None" {
			st.authDone = true
		}
	}
	hasChapKeys := false
	for k := range sec {
		hasChapKeys = hasChapKeys || strings.HasPrefix(k, "CHAP_")
	}
	if hasChapKeys {
		if st.chap == nil || st.authDone {
			return nil, lerr(statusInitiatorError, "unexpected CHAP keys")
		}
		r, done, fail := st.chap.handle(sec)
		key := st.initiator + "|" + sourceIP(c.nc.RemoteAddr())
		if fail != "" {
			if st.chap.failStatus == statusServiceUnavailable {
				// Not the initiator's failure (the RADIUS server did not
				// answer): no guessing delay, and the initiator may retry.
				c.log.Warn("iscsi: login refused: CHAP response could not be verified", "initiator", st.initiator, "why", fail)
				return nil, lerr(statusServiceUnavailable, "CHAP: %s", fail)
			}
			// Slow down guessing: the answer waits longer with each
			// failure of this initiator name from this address.
			d := c.srv.guard.authFailed(key, c.srv.cfg.AuthFailDelay, time.Now())
			c.log.Info("iscsi: CHAP authentication failed", "initiator", st.initiator, "why", fail, "delay", d)
			c.sleep(d)
			return nil, lerr(statusAuthFailure, "CHAP: %s", fail)
		}
		if done {
			c.srv.guard.authSucceeded(key)
		}
		resp = append(resp, r...)
		st.authDone = done
	}
	return resp, nil
}

// finishLogin creates (or reinstates) the session and writes the final
// Login Response.
func (c *conn) finishLogin(st *loginState, neg *negotiator, text []byte) error {
	s := c.srv
	ss := newSession(s, st.cmdSN, s.cfg.QueueDepth)
	ss.discovery = st.discovery
	ss.target = st.tgt
	ss.initiator = st.initiator
	ss.alias = st.alias
	ss.key = sessKey{initiator: st.initiator, isid: st.isid}
	if st.tgt != nil {
		ss.key.target = st.tgt.name
		ss.key.tpgt = st.grp.tag
		ss.port = st.grp.port
		ss.local = st.local
	}
	ss.p = neg.p
	if status := s.registerSession(ss); status != statusSuccess {
		return lerr(status, "cannot register session")
	}
	var sst *stmf.Session
	if !ss.discovery {
		var err error
		sst, err = st.grp.port.OpenSession(nexusInitiator(st.initiator, st.isid))
		if err != nil {
			s.forgetSession(ss)
			return lerr(statusServiceUnavailable, "open stmf session: %v", err)
		}
	}
	// Attach the nexus and this connection unless the session was closed
	// meanwhile (target removed, reinstated again, shutdown).
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		if sst != nil {
			sst.Close()
		}
		return lerr(statusTargetRemoved, "session closed during login")
	}
	ss.st = sst
	ss.conns[c] = struct{}{}
	ss.mu.Unlock()
	c.sess = ss
	c.neg = neg
	c.cid = st.cid
	st.tsih = ss.tsih
	if err := c.writeLoginResp(st, true, st.stage, pdu.StageFullFeature, 0, text); err != nil {
		return err
	}
	// Full feature phase: digests and limits take effect now.
	c.rd.MaxData = c.srv.cfg.MaxRecvDataSegmentLength
	c.statSN = st.statSN
	c.hdrDigest, c.dataDigest = ss.p.HeaderDigest, ss.p.DataDigest
	c.rd.HeaderDigest, c.rd.DataDigest = ss.p.HeaderDigest, ss.p.DataDigest
	c.maxSend.Store(ss.p.InitiatorRecvDSL)
	c.log = c.log.With("initiator", ss.initiator, "isid", fmt.Sprintf("%x", ss.key.isid), "tsih", ss.tsih)
	c.log.Info("iscsi: login", "target", ss.key.target, "discovery", ss.discovery,
		"header_digest", ss.p.HeaderDigest, "data_digest", ss.p.DataDigest,
		"immediate_data", ss.p.ImmediateData, "initial_r2t", ss.p.InitialR2T,
		"max_burst", ss.p.MaxBurstLength, "first_burst", ss.p.FirstBurstLength,
		"initiator_mrdsl", ss.p.InitiatorRecvDSL)
	return nil
}

// writeLoginResp writes a Login Response synchronously (no writer runs
// during login).
func (c *conn) writeLoginResp(st *loginState, transit bool, csg, nsg uint8, status loginStatus, data []byte) error {
	return c.writeLoginRespFlags(st, transit, false, csg, nsg, status, data)
}

// writeLoginRespFlags is writeLoginResp with the C bit.
func (c *conn) writeLoginRespFlags(st *loginState, transit, cont bool, csg, nsg uint8, status loginStatus, data []byte) error {
	var h pdu.Header
	h.SetOpcode(pdu.OpLoginResp, false)
	h.SetLoginFlags(transit, cont, csg, nsg)
	h[2], h[3] = 0, 0 // Version-max, Version-active
	h.SetISID(st.isid)
	if transit && nsg == pdu.StageFullFeature {
		h.SetTSIH(st.tsih)
	}
	h.SetITT(st.itt)
	h.SetU32(pdu.OffStatSN, st.statSN)
	st.statSN++
	h.SetU32(pdu.OffExpCmdSN, st.cmdSN)
	h.SetU32(pdu.OffMaxCmdSN, st.cmdSN+uint32(c.srv.cfg.QueueDepth)-1)
	h[36], h[37] = byte(status>>8), byte(status)
	b := pdu.AppendPDU(nil, &h, nil, data, false, false)
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

// sendLoginReject reports a failed login; the caller closes the connection.
func (c *conn) sendLoginReject(st *loginState, h *pdu.Header, le *loginError) {
	if st.first {
		st.isid, st.itt = h.ISID(), h.ITT()
		st.statSN = h.U32(pdu.OffExpStatSN)
		st.cmdSN = h.U32(pdu.OffCmdSN)
	}
	c.countLoginReject(st, le.status)
	csg, _ := h.LoginStages()
	_ = c.writeLoginResp(st, false, csg, 0, le.status, nil)
}
