package api

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Limits from COMSTAR.
const (
	MaxLUN          = 16383 // highest LUN a view may use
	MaxGroupNameLen = 255
	MaxTPGNameLen   = 255
	MaxISCSINameLen = 223
	MinSecretLen    = 12
	MaxSecretLen    = 255
	MaxAliasLen     = 255
	MaxVIDLen       = 8
	MaxPIDLen       = 16
	MaxSerialLen    = 252
	MaxMgmtURLLen   = 1024
	MaxPathLen      = 1024
	DefaultISCSI    = 3260 // iSCSI port when a portal gives none
	MinBlockSize    = 512
	MaxBlockSize    = 65536
)

// IsGUID reports whether s is 32 hexadecimal digits (either case), the
// form every GUID operand must have.
func IsGUID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// CanonicalDeviceID validates a host or target group member the way
// stmfadm does (iqn.<name> up to 223 characters of alphanumerics, '-',
// '.', ':'; eui.<16 hex>; wwn.<16 hex>) and returns its canonical form: iqn
// names lower-cased, eui/wwn hex upper-cased.
func CanonicalDeviceID(s string) (string, bool) {
	switch {
	case strings.HasPrefix(s, "iqn."):
		if len(s) > MaxISCSINameLen {
			return "", false
		}
		for _, c := range s[4:] {
			if !isAlnum(c) && c != '-' && c != '.' && c != ':' {
				return "", false
			}
		}
		return strings.ToLower(s), true
	case strings.HasPrefix(s, "wwn."), strings.HasPrefix(s, "eui."):
		h := s[4:]
		if len(h) != 16 || !isHex(h) {
			return "", false
		}
		return s[:4] + strings.ToUpper(h), true
	}
	return "", false
}

// CanonicalISCSIName validates an iSCSI node name as libiscsit does
// (iqn.yyyy-mm.<...> or eui.<16 hex>, at most 223 characters) and returns
// it canonical: iqn lower-cased, the eui hex upper-cased.
func CanonicalISCSIName(s string) (string, bool) {
	if len(s) < 12 {
		return "", false
	}
	switch {
	case strings.HasPrefix(s, "iqn."):
		if len(s) == 12 || !isDigit(s[4]) || !isDigit(s[5]) || !isDigit(s[6]) || !isDigit(s[7]) || s[8] != '-' ||
			!isDigit(s[9]) || !isDigit(s[10]) || s[11] != '.' {
			return "", false
		}
		if m := int(s[9]-'0')*10 + int(s[10]-'0'); m > 12 {
			return "", false
		}
		for _, c := range s[12:] {
			if !isAlnum(c) && c != '-' && c != '.' && c != ':' {
				return "", false
			}
		}
		if len(s) > MaxISCSINameLen {
			return "", false
		}
		return strings.ToLower(s), true
	case strings.HasPrefix(s, "eui."):
		if len(s) != 20 || !isHex(s[4:]) {
			return "", false
		}
		return "eui." + strings.ToUpper(s[4:]), true
	}
	return "", false
}

// HasISCSIPrefix reports whether s starts with "iqn." or "eui." (itadm's
// first, coarse check before CanonicalISCSIName).
func HasISCSIPrefix(s string) bool {
	return strings.HasPrefix(s, "iqn.") || strings.HasPrefix(s, "eui.")
}

// ValidGroupName reports whether name can name a host or target group:
// non-empty, at most 255 bytes, not starting with '*'.
func ValidGroupName(name string) bool {
	return name != "" && len(name) <= MaxGroupNameLen && name[0] != '*'
}

// ValidSecret reports whether a CHAP or RADIUS secret has 12..255 characters.
func ValidSecret(s string) bool { return len(s) >= MinSecretLen && len(s) <= MaxSecretLen }

// CanonicalPortal parses "IP[:port]" (IPv6 as "[addr]:port" or a bare
// address) into "ip:port", with port 3260 when none is given.
func CanonicalPortal(s string) (string, error) { return CanonicalHostPort(s, DefaultISCSI) }

// CanonicalHostPort is CanonicalPortal with another default port.
func CanonicalHostPort(s string, defaultPort int) (string, error) {
	host, port := s, strconv.Itoa(defaultPort)
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", fmt.Errorf("invalid address %q: not an IP address", s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("invalid address %q: bad port", s)
	}
	return net.JoinHostPort(ip.String(), strconv.FormatUint(n, 10)), nil
}

// PropError is a bad -p argument. Reason is stmfadm's wording: "invalid
// property specifier", "invalid property specified", "invalid length",
// "bad format" or "invalid block size".
type PropError struct {
	Arg    string // the whole argument, e.g. "vid=TOOLONGVENDOR"
	Prop   string // the property name as given
	Reason string
}

func (e *PropError) Error() string { return fmt.Sprintf("%s: %s", e.Prop, e.Reason) }

// Reasons a -p argument is refused (stmfadm's words).
const (
	ReasonSpecifier = "invalid property specifier"
	ReasonUnknown   = "invalid property specified"
	ReasonLength    = "invalid length"
	ReasonFormat    = "bad format"
	ReasonBlockSize = "invalid block size"
)

// LU property names (case-insensitive on the command line).
var luPropNames = []string{"alias", "blk", "guid", "host-id", "meta", "mgmt-url", "oui", "pid", "serial", "vid", "wcd", "wp", "thin", "soft-threshold", "preallocation", "qos-iops", "qos-mbps"}

// LUPropNames lists the -p property names create-lu accepts.
func LUPropNames() []string { return append([]string(nil), luPropNames...) }

// ModifiableLUProps are the properties modify-lu may change.
var modifiable = map[string]bool{"alias": true, "mgmt-url": true, "wcd": true, "wp": true, "soft-threshold": true, "qos-iops": true, "qos-mbps": true}

// IsModifiableLUProp reports whether modify-lu may change the property.
func IsModifiableLUProp(name string) bool { return modifiable[strings.ToLower(name)] }

// ParseLUProp applies one "name=value" -p argument to p, validating the
// value as stmfadm does. It returns the lower-cased property name.
func ParseLUProp(p *LUProps, arg string) (string, error) {
	name, val, ok := strings.Cut(arg, "=")
	if !ok || (val == "" && !strings.EqualFold(name, "mgmt-url")) {
		return name, &PropError{Arg: arg, Prop: name, Reason: ReasonSpecifier}
	}
	lname := strings.ToLower(name)
	bad := func(reason string) error { return &PropError{Arg: arg, Prop: name, Reason: reason} }
	str := func(max int) (*string, error) {
		if len(val) > max {
			return nil, bad(ReasonLength)
		}
		v := val
		return &v, nil
	}
	var err error
	switch lname {
	case "alias":
		p.Alias, err = str(MaxAliasLen)
	case "blk":
		n, perr := strconv.ParseUint(val, 10, 32)
		if perr != nil {
			return lname, bad(ReasonFormat)
		}
		b := uint32(n)
		if !ValidBlockSize(b) {
			return lname, bad(ReasonBlockSize)
		}
		p.BlockSize = &b
	case "guid":
		if len(val) != 32 {
			return lname, bad(ReasonLength)
		}
		if !isHex(val) || val[0] != '6' {
			return lname, bad(ReasonFormat)
		}
		p.GUID = strings.ToUpper(val)
	case "host-id":
		if len(val) != 8 {
			return lname, bad(ReasonLength)
		}
		if !isHex(val) {
			return lname, bad(ReasonFormat)
		}
		p.HostID = strings.ToUpper(val)
	case "meta":
		if len(val) > MaxPathLen {
			return lname, bad(ReasonLength)
		}
		p.MetaFile = val
	case "mgmt-url":
		p.MgmtURL, err = str(MaxMgmtURLLen)
	case "oui":
		if len(val) != 6 {
			return lname, bad(ReasonLength)
		}
		if !isHex(val) {
			return lname, bad(ReasonFormat)
		}
		p.OUI = strings.ToUpper(val)
	case "pid":
		p.PID, err = str(MaxPIDLen)
	case "serial":
		p.Serial, err = str(MaxSerialLen)
	case "vid":
		p.VID, err = str(MaxVIDLen)
	case "soft-threshold":
		n, perr := strconv.ParseUint(val, 10, 8)
		if perr != nil || n > 100 {
			return lname, bad(ReasonFormat)
		}
		v := uint8(n)
		p.SoftThreshold = &v
	case "qos-iops", "qos-mbps":
		n, perr := strconv.ParseUint(val, 10, 64)
		if perr != nil || n > MaxQoS {
			return lname, bad(ReasonFormat)
		}
		if lname == "qos-iops" {
			p.QoSIOPS = &n
		} else {
			p.QoSMBps = &n
		}
	case "preallocation":
		if !ValidPreallocation(val) {
			return lname, bad(ReasonFormat)
		}
		p.Preallocation = strings.ToLower(val)
	case "wcd", "wp", "thin":
		var b bool
		switch strings.ToLower(val) {
		case "true":
			b = true
		case "false":
		default:
			return lname, bad(ReasonFormat)
		}
		switch lname {
		case "wcd":
			p.WCD = &b
		case "wp":
			p.WP = &b
		default:
			p.Thin = &b
		}
	default:
		return name, &PropError{Arg: arg, Prop: name, Reason: ReasonUnknown}
	}
	return lname, err
}

// MaxQoS bounds qos-iops and qos-mbps (10^9 IOPS or MiB/s is beyond any
// LU; the bound keeps MiB/s in bytes far from overflow).
const MaxQoS = 1_000_000_000

// WithoutQoS returns p without its QoS properties (those the daemon keeps,
// not the LU provider).
func (p LUProps) WithoutQoS() LUProps {
	p.QoSIOPS, p.QoSMBps = nil, nil
	return p
}

// Preallocation modes of create-lu -p preallocation= (costar).
const (
	PreallocOff    = "off"
	PreallocFalloc = "falloc"
	PreallocFull   = "full"
)

// ValidPreallocation reports whether s names a preallocation mode.
func ValidPreallocation(s string) bool {
	switch strings.ToLower(s) {
	case PreallocOff, PreallocFalloc, PreallocFull:
		return true
	}
	return false
}

// ValidBlockSize reports whether b is a power of two in 512..65536.
func ValidBlockSize(b uint32) bool {
	return b >= MinBlockSize && b <= MaxBlockSize && b&(b-1) == 0
}

// Validate checks every property that is set (the server re-checks what
// the CLI already did). With modify set, only the modifiable ones may be set.
func (p *LUProps) Validate(modify bool) error {
	if modify {
		switch {
		case p.BlockSize != nil:
			return &PropError{Prop: "blk", Reason: "not modifiable"}
		case p.GUID != "":
			return &PropError{Prop: "guid", Reason: "not modifiable"}
		case p.HostID != "":
			return &PropError{Prop: "host-id", Reason: "not modifiable"}
		case p.MetaFile != "":
			return &PropError{Prop: "meta", Reason: "not modifiable"}
		case p.OUI != "":
			return &PropError{Prop: "oui", Reason: "not modifiable"}
		case p.PID != nil:
			return &PropError{Prop: "pid", Reason: "not modifiable"}
		case p.Serial != nil:
			return &PropError{Prop: "serial", Reason: "not modifiable"}
		case p.VID != nil:
			return &PropError{Prop: "vid", Reason: "not modifiable"}
		case p.Thin != nil:
			return &PropError{Prop: "thin", Reason: "not modifiable"}
		case p.Preallocation != "":
			return &PropError{Prop: "preallocation", Reason: "not modifiable"}
		}
	}
	check := func(name string, v *string, max int) error {
		if v != nil && len(*v) > max {
			return &PropError{Prop: name, Reason: ReasonLength}
		}
		return nil
	}
	hexLen := func(name, v string, n int) error {
		switch {
		case v == "":
			return nil
		case len(v) != n:
			return &PropError{Prop: name, Reason: ReasonLength}
		case !isHex(v):
			return &PropError{Prop: name, Reason: ReasonFormat}
		}
		return nil
	}
	errs := []error{
		check("alias", p.Alias, MaxAliasLen),
		check("mgmt-url", p.MgmtURL, MaxMgmtURLLen),
		check("pid", p.PID, MaxPIDLen),
		check("serial", p.Serial, MaxSerialLen),
		check("vid", p.VID, MaxVIDLen),
		hexLen("guid", p.GUID, 32),
		hexLen("host-id", p.HostID, 8),
		hexLen("oui", p.OUI, 6),
	}
	if p.GUID != "" && p.GUID[0] != '6' {
		errs = append(errs, &PropError{Prop: "guid", Reason: ReasonFormat})
	}
	if p.BlockSize != nil && !ValidBlockSize(*p.BlockSize) {
		errs = append(errs, &PropError{Prop: "blk", Reason: ReasonBlockSize})
	}
	for name, v := range map[string]*uint64{"qos-iops": p.QoSIOPS, "qos-mbps": p.QoSMBps} {
		if v != nil && *v > MaxQoS {
			errs = append(errs, &PropError{Prop: name, Reason: ReasonFormat})
		}
	}
	if p.Preallocation != "" && !ValidPreallocation(p.Preallocation) {
		errs = append(errs, &PropError{Prop: "preallocation", Reason: ReasonFormat})
	}
	if len(p.MetaFile) > MaxPathLen {
		errs = append(errs, &PropError{Prop: "meta", Reason: ReasonLength})
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// IsEmpty reports whether no property is set.
func (p *LUProps) IsEmpty() bool { return *p == (LUProps{}) }

// AsPropError returns the *PropError in err's chain, if any.
func AsPropError(err error) (*PropError, bool) {
	var pe *PropError
	ok := errors.As(err, &pe)
	return pe, ok
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c rune) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return s != ""
}
