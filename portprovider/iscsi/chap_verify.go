package iscsi

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"
)

// ErrCHAPRejected is what a CHAPVerifier returns when the authority it
// asks (a RADIUS server) refuses the response: the login fails with 0201.
// Any other error means no answer could be had: the login is refused
// with 0301 (service unavailable) so the initiator retries later.
var ErrCHAPRejected = errors.New("CHAP response rejected")

// CHAPVerifier checks an initiator's CHAP response somewhere else than
// against a secret the target holds: RADIUS (RFC 2865 CHAP-Password and
// CHAP-Challenge). Only MD5 CHAP is offered when one is set, as RADIUS
// knows no other.
type CHAPVerifier interface {
	VerifyCHAP(ctx context.Context, user string, id byte, challenge, response []byte) error
}

// chapVerifyTimeout bounds one remote verification (the login phase has
// its own, longer, deadline).
const chapVerifyTimeout = 10 * time.Second

// canCHAP reports whether an initiator can authenticate with CHAP at all.
func (c CHAPCredentials) canCHAP() bool {
	return c.InitiatorSecret != "" || c.Verifier != nil
}

// checkResponse decides the initiator's CHAP_N and CHAP_R: against the
// secret we hold, or by asking the verifier. It returns why it failed and
// the login status to answer.
func (a *chapState) checkResponse(name string, got []byte) (string, loginStatus) {
	if v := a.creds.Verifier; v != nil {
		ctx, cancel := context.WithTimeout(context.Background(), chapVerifyTimeout)
		defer cancel()
		err := v.VerifyCHAP(ctx, name, a.id, a.challenge, got)
		switch {
		case err == nil:
			return "", statusSuccess
		case errors.Is(err, ErrCHAPRejected):
			return err.Error(), statusAuthFailure
		default:
			return "cannot verify the CHAP response: " + err.Error(), statusServiceUnavailable
		}
	}
	if a.creds.InitiatorSecret == "" || (a.creds.InitiatorUser != "" && !chapUserMatches(name, a.creds.InitiatorUser)) {
		return "unknown CHAP user", statusAuthFailure
	}
	want := chapResponse(chapHash(a.alg), a.id, a.creds.InitiatorSecret, a.challenge)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return "CHAP response mismatch", statusAuthFailure
	}
	return "", statusSuccess
}
