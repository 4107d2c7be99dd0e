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
	"strconv"
	"strings"
	"time"
)

// TargetConfig describes one iSCSI target node and the portal groups it is
// served on.
type TargetConfig struct {
	Name  string // iqn.…, eui.… or naa.…
	Alias string // optional TargetAlias
	// PortalGroups are the target portal groups the target is reachable
	// through. Empty: the default portal group (Config.Portals) with tag
	// TPGT. Each group is its own SCSI target port "<name>,t,0x<tag>" and
	// its own ALUA target port group (number = tag).
	PortalGroups []PortalGroup
	// TPGT is the default portal group's tag when PortalGroups is empty;
	// 0 means 1.
	TPGT uint16
}

// PortalGroup is one target portal group a target is bound to.
type PortalGroup struct {
	Tag     uint16   // target portal group tag, 1..65535, unique per target
	Portals []string // listen addresses "ip:port" ("[v6]:port"); port 0 picks one
}

// Values of Config.AbortCompletedTask.
const (
	// AbortTaskDoesNotExist (the default) follows RFC 7143 11.5.1: an
	// unknown task whose RefCmdSN lies outside the CmdSN window (it already
	// completed) gets TASK DOES NOT EXIST; one inside the window and older
	// than the TMF is considered received (its CmdSN is consumed) and gets
	// FUNCTION COMPLETE. SCST answers ESXi the same way.
	AbortTaskDoesNotExist = "task-does-not-exist"
	// AbortFunctionComplete answers FUNCTION COMPLETE for every unknown
	// task, for initiators that escalate on TASK DOES NOT EXIST.
	AbortFunctionComplete = "function-complete"
)

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

	// DataOutBudget bounds, per session, the bytes of write buffers held
	// for commands whose Data-Out is solicited with R2Ts (default 64 MiB;
	// <0: unlimited). A write beyond it waits, in command order, before
	// its buffer is allocated and its R2Ts are sent, and the CmdSN window
	// stops growing meanwhile. A single write larger than the budget runs
	// alone. Immediate and unsolicited data (at most FirstBurstLength per
	// command) is always accepted and counted.
	DataOutBudget int64
	// AbortCompletedTask is the ABORT TASK policy for a task the target
	// does not know: AbortTaskDoesNotExist (default) or AbortFunctionComplete.
	AbortCompletedTask string

	// ResponseBudget bounds, per connection, the bytes of responses held
	// for the initiator: queued for the writer, or reserved for commands
	// being executed (default 16 MiB, minimum 4 x MaxRecvDataSegmentLength
	// + 128 KiB). See respBudget: control responses (NOP-In, Text,
	// Reject, TMF, Logout) get 2 x MaxRecvDataSegmentLength + 64 KiB of it
	// and stop the reader when full; SCSI responses get the rest and make
	// commands wait before they run. One command larger than its share
	// runs alone.
	ResponseBudget int64

	// Admission before login (0: the default; <0: unlimited). A
	// connection over a limit is closed at once, before any PDU is read.
	MaxConnectionsPerPortal int // open connections per listening portal (default 1024)
	MaxConnectionsPerSource int // open connections per initiator IP address, all portals (default 128)
	MaxLoginsInProgress     int // connections still in the login phase (default 64)
	// AuthFailDelay delays the answer to a failed CHAP response, per
	// initiator name and source address: the first failure waits this
	// long, each further one within 15 minutes twice as long, up to 8 s
	// (default 1 s; <0: no delay).
	AuthFailDelay time.Duration
	// IdlePoll is how long a connection's reader polls the socket
	// without parking after its last command completed, before it
	// parks (idlepoll.go; default DefaultIdlePoll, <0: never). It
	// trades CPU for queue-depth-1 latency.
	IdlePoll time.Duration
}

// ctlBudget is the control share of the response budget.
func (c *Config) ctlBudget() int64 { return 2*int64(c.MaxRecvDataSegmentLength) + 64<<10 }

// taskBudget is the SCSI response share of the response budget.
func (c *Config) taskBudget() int64 { return c.ResponseBudget - c.ctlBudget() }

// Defaults.
const (
	DefaultMaxRecvDataSegmentLength = 256 << 10
	DefaultMaxBurstLength           = 16776192
	DefaultFirstBurstLength         = 256 << 10
	DefaultMaxOutstandingR2T        = 16
	DefaultQueueDepth               = 128
	DefaultMaxIOSize                = 64 << 20
	DefaultDataOutBudget            = 64 << 20
	DefaultResponseBudget           = 16 << 20
	DefaultMaxConnectionsPerPortal  = 1024
	DefaultMaxConnectionsPerSource  = 128
	DefaultMaxLoginsInProgress      = 64
	DefaultAuthFailDelay            = time.Second
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
	if o.DataOutBudget == 0 {
		o.DataOutBudget = DefaultDataOutBudget
	}
	if o.ResponseBudget == 0 {
		o.ResponseBudget = DefaultResponseBudget
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defInt(&o.MaxConnectionsPerPortal, DefaultMaxConnectionsPerPortal)
	defInt(&o.MaxConnectionsPerSource, DefaultMaxConnectionsPerSource)
	defInt(&o.MaxLoginsInProgress, DefaultMaxLoginsInProgress)
	if o.AuthFailDelay == 0 {
		o.AuthFailDelay = DefaultAuthFailDelay
	}
	if o.IdlePoll == 0 {
		o.IdlePoll = DefaultIdlePoll
	}
	if o.AbortCompletedTask == "" {
		o.AbortCompletedTask = AbortTaskDoesNotExist
	}
	if o.AbortCompletedTask != AbortFunctionComplete && o.AbortCompletedTask != AbortTaskDoesNotExist {
		return o, fmt.Errorf("iscsi: AbortCompletedTask %q: want %q or %q", o.AbortCompletedTask, AbortFunctionComplete, AbortTaskDoesNotExist)
	}
	for _, p := range o.Portals {
		if err := checkPortal(p); err != nil {
			return o, err
		}
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
	case o.ResponseBudget < 2*o.ctlBudget():
		return o, fmt.Errorf("iscsi: ResponseBudget %d below %d (4 x MaxRecvDataSegmentLength + 128 KiB)", o.ResponseBudget, 2*o.ctlBudget())
	case o.DefaultTime2Wait > 3600 || o.DefaultTime2Retain > 3600:
		return o, errors.New("iscsi: DefaultTime2Wait/Retain out of range 0..3600")
	}
	return o, nil
}

// checkPortal validates a listen address "ip:port".
func checkPortal(p string) error {
	host, port, err := net.SplitHostPort(p)
	if err != nil {
		return fmt.Errorf("iscsi: portal %q: %w", p, err)
	}
	if host != "" && net.ParseIP(host) == nil {
		return fmt.Errorf("iscsi: portal %q: not an IP address", p)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("iscsi: portal %q: bad port", p)
	}
	return nil
}

// CanonicalName returns an iSCSI name in the form names are compared in:
// RFC 3722 stringprep lower-cases names (we fold case, the part of the
// profile that matters for the ASCII names initiators use), and, as
// COMSTAR stores them, the hexadecimal part of eui. and naa. names is
// upper-cased. Host group members and initiator contexts are stored in
// this form by the management plane.
func CanonicalName(n string) string {
	l := strings.ToLower(n)
	if strings.HasPrefix(l, "eui.") || strings.HasPrefix(l, "naa.") {
		return l[:4] + strings.ToUpper(l[4:])
	}
	return l
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
	// Verifier, when set, checks the initiator's response instead of
	// InitiatorUser/InitiatorSecret (RADIUS: chap_verify.go).
	Verifier CHAPVerifier
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
