// Package iscsi is costar's RFC 7143 iSCSI target port provider. It owns
// the wire: portals, login and parameter negotiation, discovery, sessions
// and connections, the CmdSN window, Data-Out/R2T/Data-In sequencing,
// digests and task management, and turns SCSI Command PDUs into
// stmf.Tasks. It never parses a CDB beyond its length and never sees an LU.
package iscsi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// TargetConfig describes one iSCSI target node served on every portal.
type TargetConfig struct {
	Name  string // iqn.…, eui.… or naa.…
	Alias string // optional TargetAlias
	TPGT  uint16 // target portal group tag; 0 means the default, 1
}

// Config configures a Server. Zero limits take the defaults below.
type Config struct {
	Portals []string // listen addresses, e.g. "127.0.0.1:3260", "[::1]:3260"
	Targets []TargetConfig
	Auth    Authenticator // nil: no authentication
	Logger  *slog.Logger

	// Limits we announce or accept.
	MaxRecvDataSegmentLength uint32 // ours, declared to the initiator (default 256 KiB)
	MaxBurstLength           uint32 // our offer (default 16776192)
	FirstBurstLength         uint32 // our offer (default 256 KiB)
	MaxOutstandingR2T        uint32 // our offer (default 16)
	MaxConnections           uint32 // per session (default 1; only 1 is implemented)
	DefaultTime2Wait         uint32 // seconds (default 2)
	DefaultTime2Retain       uint32 // seconds (default 0: no connection recovery)
	InitialR2T               *bool  // our offer (default false: unsolicited data allowed)
	ImmediateData            *bool  // our offer (default true)
	DisableDigests           bool   // offer only None for HeaderDigest/DataDigest

	QueueDepth        int           // CmdSN window per session (default 128, minimum 16)
	MaxIOSize         uint32        // largest accepted expected data transfer length (default 64 MiB)
	NOPInInterval     time.Duration // idle time before a NOP-In ping (default 10 s; <0 disables)
	NOPInTimeout      time.Duration // ping answer deadline before the connection is dropped (default 15 s)
	LoginTimeout      time.Duration // whole login phase deadline (default 15 s)
	LogoutWait        time.Duration // Shutdown: time Async logout requests get before a hard close (default 2 s)
	TextResponseLimit int           // largest SendTargets response (default 1 MiB)
}

// Defaults.
const (
	DefaultMaxRecvDataSegmentLength = 256 << 10
	DefaultMaxBurstLength           = 16776192
	DefaultFirstBurstLength         = 256 << 10
	DefaultMaxOutstandingR2T        = 16
	DefaultQueueDepth               = 128
	DefaultMaxIOSize                = 64 << 20
	minQueueDepth                   = 16
)

func (c *Config) withDefaults() (Config, error) {
	o := *c
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	def32 := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	def32(&o.MaxRecvDataSegmentLength, DefaultMaxRecvDataSegmentLength)
	def32(&o.MaxBurstLength, DefaultMaxBurstLength)
	def32(&o.FirstBurstLength, DefaultFirstBurstLength)
	def32(&o.MaxOutstandingR2T, DefaultMaxOutstandingR2T)
	// Only one connection per session is implemented so far; never
	// announce more.
	o.MaxConnections = 1
	def32(&o.MaxIOSize, DefaultMaxIOSize)
	if o.DefaultTime2Wait == 0 {
		o.DefaultTime2Wait = 2
	}
	if o.InitialR2T == nil {
		f := false
		o.InitialR2T = &f
	}
	if o.ImmediateData == nil {
		t := true
		o.ImmediateData = &t
	}
	if o.QueueDepth == 0 {
		o.QueueDepth = DefaultQueueDepth
	}
	if o.NOPInInterval == 0 {
		o.NOPInInterval = 10 * time.Second
	}
	if o.NOPInTimeout == 0 {
		o.NOPInTimeout = 15 * time.Second
	}
	if o.LoginTimeout == 0 {
		o.LoginTimeout = 15 * time.Second
	}
	if o.LogoutWait == 0 {
		o.LogoutWait = 2 * time.Second
	}
	if o.TextResponseLimit == 0 {
		o.TextResponseLimit = 1 << 20
	}
	switch {
	case o.MaxRecvDataSegmentLength < 512 || o.MaxRecvDataSegmentLength > 1<<24-1:
		return o, fmt.Errorf("iscsi: MaxRecvDataSegmentLength %d out of range 512..16777215", o.MaxRecvDataSegmentLength)
	case o.MaxBurstLength < 512 || o.MaxBurstLength > 1<<24-1:
		return o, fmt.Errorf("iscsi: MaxBurstLength %d out of range 512..16777215", o.MaxBurstLength)
	case o.FirstBurstLength < 512 || o.FirstBurstLength > o.MaxBurstLength:
		return o, fmt.Errorf("iscsi: FirstBurstLength %d out of range 512..MaxBurstLength", o.FirstBurstLength)
	case o.MaxOutstandingR2T > 65535:
		return o, fmt.Errorf("iscsi: MaxOutstandingR2T %d out of range 1..65535", o.MaxOutstandingR2T)
	case o.QueueDepth < minQueueDepth || o.QueueDepth > 1<<20:
		return o, fmt.Errorf("iscsi: QueueDepth %d out of range %d..%d", o.QueueDepth, minQueueDepth, 1<<20)
	case o.DefaultTime2Wait > 3600 || o.DefaultTime2Retain > 3600:
		return o, errors.New("iscsi: DefaultTime2Wait/Retain out of range 0..3600")
	}
	return o, nil
}

// validName checks the iSCSI name formats (RFC 3720 3.2.6, RFC 3721).
func validName(n string) bool {
	if len(n) < 5 || len(n) > 223 {
		return false
	}
	l := strings.ToLower(n)
	return strings.HasPrefix(l, "iqn.") || strings.HasPrefix(l, "eui.") || strings.HasPrefix(l, "naa.")
}

// AuthRequest describes a login that needs an authentication decision.
type AuthRequest struct {
	InitiatorName string
	TargetName    string // empty for a discovery session
	Discovery     bool
	RemoteAddr    net.Addr
}

// CHAPCredentials are the secrets one login is checked against. The
// server runs the CHAP exchange itself (RFC 7143 12.1.3) and never logs a
// secret.
type CHAPCredentials struct {
	// Required demands CHAP; a login offering only AuthMethod=None then
	// fails with 0201 (authentication failure).
	Required bool
	// InitiatorUser/InitiatorSecret: what the initiator must prove (its
	// CHAP_N must equal InitiatorUser). Empty secret: CHAP impossible.
	InitiatorUser   string
	InitiatorSecret string
	// TargetUser/TargetSecret: our answer when the initiator asks for
	// mutual CHAP (sends CHAP_I/CHAP_C). Empty secret refuses mutual CHAP.
	TargetUser   string
	TargetSecret string
}

// Authenticator decides, per initiator and target (or discovery), whether
// CHAP is required and with which secrets (one-way or mutual).
type Authenticator interface {
	CHAP(ctx context.Context, r AuthRequest) (CHAPCredentials, error)
}

// AuthFunc adapts a function to Authenticator.
type AuthFunc func(ctx context.Context, r AuthRequest) (CHAPCredentials, error)

// CHAP implements Authenticator.
func (f AuthFunc) CHAP(ctx context.Context, r AuthRequest) (CHAPCredentials, error) { return f(ctx, r) }
