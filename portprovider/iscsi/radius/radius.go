// Package radius checks iSCSI CHAP responses with a RADIUS server (RFC
// 2865 CHAP-Password and CHAP-Challenge), as COMSTAR's iscsit does when an
// initiator's authentication method is radius: the target issues the
// challenge, the RADIUS server holds the initiators' secrets and answers
// Access-Accept or Access-Reject.
package radius

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	layeh "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"

	"github.com/costar-project/costar/portprovider/iscsi"
)

// Defaults for a Client's zero fields.
const (
	DefaultTimeout = 3 * time.Second // per server, resends included
	DefaultRetry   = time.Second     // resend interval within Timeout
)

// Client sends Access-Requests to its servers in order: the next one is
// asked only when one does not answer (failover). It never logs the
// shared secret or a CHAP response.
type Client struct {
	Servers []string // "host:port" (UDP)
	Secret  []byte   // shared secret
	// NASIdentifier names this target to the server (optional).
	NASIdentifier string
	Timeout       time.Duration
	Retry         time.Duration
	Log           *slog.Logger

	mu   sync.Mutex
	down map[string]bool // servers last seen unreachable: logged once per change
}

var _ iscsi.CHAPVerifier = (*Client)(nil)

// VerifyCHAP asks the servers whether response is user's MD5 CHAP answer
// to (id, challenge). It returns nil on Access-Accept, an error wrapping
// iscsi.ErrCHAPRejected on Access-Reject (or anything but Accept), and
// another error when no server answered.
func (c *Client) VerifyCHAP(ctx context.Context, user string, id byte, challenge, response []byte) error {
	if len(response) != md5.Size {
		return fmt.Errorf("%w: CHAP response is %d bytes, RADIUS takes MD5 (16)", iscsi.ErrCHAPRejected, len(response))
	}
	if len(c.Servers) == 0 || len(c.Secret) == 0 {
		return errors.New("radius: no server or no secret configured")
	}
	var errs []error
	for _, srv := range c.Servers {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		code, err := c.exchange(ctx, srv, user, id, challenge, response)
		c.noteServer(srv, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", srv, err))
			continue
		}
		if code == layeh.CodeAccessAccept {
			return nil
		}
		return fmt.Errorf("%w: RADIUS server %s answered %v for user %q", iscsi.ErrCHAPRejected, srv, code, user)
	}
	return fmt.Errorf("radius: no server answered: %w", errors.Join(errs...))
}

// exchange sends one Access-Request to srv and returns the answer's code.
func (c *Client) exchange(ctx context.Context, srv, user string, id byte, challenge, response []byte) (layeh.Code, error) {
	p := layeh.New(layeh.CodeAccessRequest, c.Secret)
	pw := append([]byte{id}, response...)
	if err := errors.Join(
		rfc2865.UserName_SetString(p, user),
		rfc2865.CHAPPassword_Set(p, pw),
		rfc2865.CHAPChallenge_Set(p, challenge),
		rfc2865.ServiceType_Set(p, rfc2865.ServiceType_Value_AuthenticateOnly),
	); err != nil {
		return 0, fmt.Errorf("building Access-Request: %w", err)
	}
	if c.NASIdentifier != "" {
		if err := rfc2865.NASIdentifier_SetString(p, c.NASIdentifier); err != nil {
			return 0, fmt.Errorf("building Access-Request: %w", err)
		}
	}
	if err := signRequest(p); err != nil {
		return 0, err
	}
	timeout, retry := c.Timeout, c.Retry
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if retry <= 0 {
		retry = DefaultRetry
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl := layeh.Client{Retry: retry, MaxPacketErrors: 10}
	resp, err := cl.Exchange(ctx, p, srv)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("no answer within %v", timeout)
		}
		return 0, err
	}
	if err := checkResponseMA(resp, p.Authenticator); err != nil {
		return 0, err
	}
	return resp.Code, nil
}

// signRequest adds Message-Authenticator (RFC 3579 3.2), which servers
// hardened against forged responses (CVE-2024-3596) require.
func signRequest(p *layeh.Packet) error {
	var zero [md5.Size]byte
	if err := rfc2869.MessageAuthenticator_Set(p, zero[:]); err != nil {
		return fmt.Errorf("building Access-Request: %w", err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encoding Access-Request: %w", err)
	}
	m := hmac.New(md5.New, p.Secret)
	m.Write(b)
	return rfc2869.MessageAuthenticator_Set(p, m.Sum(nil))
}

// checkResponseMA verifies a response's Message-Authenticator when it has
// one: HMAC-MD5 over the response with the request's authenticator.
func checkResponseMA(resp *layeh.Packet, reqAuth [16]byte) error {
	got, err := rfc2869.MessageAuthenticator_Lookup(resp)
	if err != nil {
		return nil // absent: the response authenticator was checked already
	}
	q := *resp
	q.Attributes = append(layeh.Attributes(nil), resp.Attributes...)
	q.Authenticator = reqAuth
	var zero [md5.Size]byte
	if err := rfc2869.MessageAuthenticator_Set(&q, zero[:]); err != nil {
		return err
	}
	b, err := q.MarshalBinary()
	if err != nil {
		return err
	}
	m := hmac.New(md5.New, resp.Secret)
	m.Write(b)
	if !hmac.Equal(m.Sum(nil), got) {
		return errors.New("response has a wrong Message-Authenticator (shared secret mismatch?)")
	}
	return nil
}

// noteServer logs a server going down or coming back, once per change.
func (c *Client) noteServer(srv string, err error) {
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down == nil {
		c.down = map[string]bool{}
	}
	was := c.down[srv]
	c.down[srv] = err != nil
	switch {
	case err != nil && !was:
		log.Warn("radius: server unreachable; CHAP logins it must check are refused", "server", srv, "err", err)
	case err == nil && was:
		log.Info("radius: server answers again", "server", srv)
	}
}
