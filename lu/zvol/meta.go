package zvol

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/costar-project/costar/stmf"
)

// ZFS user properties holding an LU's metadata.
//
// PropLU, the LU's identity, is one line of JSON:
//
//	{"v":1,"guid":"600144F0...","zvol":"tank/vol1","zvol_guid":"1234...","blk":512,
//	 "vid":"COSTAR","pid":"COMSTAR","serial":"","alias":"db","mgmt_url":"","wcd":false,"wp":false}
//
// v is the format version: readers refuse a larger one (a newer,
// incompatible format) and keep keys they do not know, writing them back
// unchanged, so versions can share a zvol. zvol and zvol_guid are the
// dataset the metadata was written for: a clone or a copy received under
// another name carries the metadata of its source and is recognised by
// them (see Classify). The LU's size is not stored: it is the volsize.
//
// PropPR, persistent reservation state kept while APTPL is in force, is
// "1:" followed by the base64 (standard, unpadded) of the state compressed
// with DEFLATE; absent or "1:" with nothing after it when there is none.
//
// Both fit ZFS's limit for a user property value (MaxPropLen).
const (
	PropLU = "org.costar:lu"
	PropPR = "org.costar:pr"

	// MetaVersion is the format version written.
	MetaVersion = 1
	// MaxPropLen is the longest user property value ZFS stores
	// (ZAP_MAXVALUELEN - 1: the value and its NUL fit in 8 KiB).
	MaxPropLen = 8191
	// maxPRState bounds decompressed PR state (hostile input must not make
	// us allocate more than this).
	maxPRState = 64 << 10
)

// ErrNoMetadata is returned (wrapped) when a zvol holds no costar LU
// metadata.
var ErrNoMetadata = errors.New("no costar LU metadata on the zvol")

// ErrNewerFormat is returned (wrapped) for metadata in a format version
// newer than this program knows.
var ErrNewerFormat = errors.New("LU metadata written by a newer costar")

// Meta is an LU's identity as stored in PropLU.
type Meta struct {
	GUID      stmf.GUID
	Zvol      string // dataset name the metadata was written for
	ZvolGUID  uint64 // ZFS guid of that dataset (0 = unknown)
	BlockSize uint32 // logical block size of the LU
	VendorID  string
	ProductID string
	Serial    string
	Alias     string
	MgmtURL   string
	WCD       bool // write cache disabled
	WP        bool // write protected

	unknown map[string]json.RawMessage // keys of newer versions, kept
}

// wireMeta is Meta's JSON form.
type wireMeta struct {
	V        int    `json:"v"`
	GUID     string `json:"guid"`
	Zvol     string `json:"zvol"`
	ZvolGUID string `json:"zvol_guid,omitempty"` // decimal: JSON numbers lose uint64 precision elsewhere
	Blk      uint32 `json:"blk"`
	VID      string `json:"vid"`
	PID      string `json:"pid"`
	Serial   string `json:"serial"`
	Alias    string `json:"alias"`
	MgmtURL  string `json:"mgmt_url"`
	WCD      bool   `json:"wcd"`
	WP       bool   `json:"wp"`
}

var knownKeys = map[string]bool{"v": true, "guid": true, "zvol": true, "zvol_guid": true, "blk": true,
	"vid": true, "pid": true, "serial": true, "alias": true, "mgmt_url": true, "wcd": true, "wp": true}

// Encode returns the PropLU value for m.
func (m *Meta) Encode() (string, error) {
	if m.GUID.IsZero() {
		return "", errors.New("zvol: metadata without a GUID")
	}
	if err := ValidVolumeName(m.Zvol); err != nil {
		return "", fmt.Errorf("zvol: metadata: %w", err)
	}
	if !validBlockSize(m.BlockSize) {
		return "", fmt.Errorf("zvol: metadata: invalid block size %d", m.BlockSize)
	}
	for _, s := range []string{m.VendorID, m.ProductID, m.Serial, m.Alias, m.MgmtURL} {
		if !utf8.ValidString(s) {
			return "", errors.New("zvol: metadata: a property is not valid UTF-8")
		}
	}
	w := wireMeta{V: MetaVersion, GUID: m.GUID.String(), Zvol: m.Zvol, Blk: m.BlockSize,
		VID: m.VendorID, PID: m.ProductID, Serial: m.Serial, Alias: m.Alias, MgmtURL: m.MgmtURL, WCD: m.WCD, WP: m.WP}
	if m.ZvolGUID != 0 {
		w.ZvolGUID = strconv.FormatUint(m.ZvolGUID, 10)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("zvol: encoding metadata: %w", err)
	}
	if len(m.unknown) > 0 {
		// Append the keys this version does not know, in a stable order.
		all := map[string]json.RawMessage{}
		if err := json.Unmarshal(b, &all); err != nil {
			return "", fmt.Errorf("zvol: encoding metadata: %w", err)
		}
		for k, v := range m.unknown {
			all[k] = v
		}
		if b, err = json.Marshal(all); err != nil { // map keys are sorted
			return "", fmt.Errorf("zvol: encoding metadata: %w", err)
		}
	}
	if len(b) > MaxPropLen {
		return "", fmt.Errorf("zvol: LU metadata is %d bytes, more than a ZFS user property holds (%d); shorten the alias or management URL", len(b), MaxPropLen)
	}
	return string(b), nil
}

// DecodeMeta parses a PropLU value. It fails with ErrNewerFormat for a
// format version it does not know and with a description of the problem
// for anything malformed.
func DecodeMeta(s string) (*Meta, error) {
	if len(s) > MaxPropLen {
		return nil, fmt.Errorf("zvol: %s is %d bytes long, more than ZFS allows", PropLU, len(s))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("zvol: %s is not valid JSON: %w", PropLU, err)
	}
	var w wireMeta
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("zvol: %s: %w", PropLU, err)
	}
	switch {
	case w.V <= 0:
		return nil, fmt.Errorf("zvol: %s: bad format version %d", PropLU, w.V)
	case w.V > MetaVersion:
		return nil, fmt.Errorf("zvol: %s: format version %d, this program knows %d: %w", PropLU, w.V, MetaVersion, ErrNewerFormat)
	}
	for _, k := range []string{"guid", "zvol", "blk"} {
		if _, ok := raw[k]; !ok {
			return nil, fmt.Errorf("zvol: %s: %q missing", PropLU, k)
		}
	}
	m := &Meta{Zvol: w.Zvol, BlockSize: w.Blk, VendorID: w.VID, ProductID: w.PID, Serial: w.Serial,
		Alias: w.Alias, MgmtURL: w.MgmtURL, WCD: w.WCD, WP: w.WP}
	g, err := stmf.ParseGUID(w.GUID)
	if err != nil || g.IsZero() {
		return nil, fmt.Errorf("zvol: %s: bad GUID %q", PropLU, w.GUID)
	}
	m.GUID = g
	if err := ValidVolumeName(w.Zvol); err != nil {
		return nil, fmt.Errorf("zvol: %s: %w", PropLU, err)
	}
	if w.ZvolGUID != "" {
		if m.ZvolGUID, err = strconv.ParseUint(w.ZvolGUID, 10, 64); err != nil {
			return nil, fmt.Errorf("zvol: %s: bad zvol_guid %q", PropLU, w.ZvolGUID)
		}
	}
	if !validBlockSize(w.Blk) {
		return nil, fmt.Errorf("zvol: %s: invalid block size %d", PropLU, w.Blk)
	}
	for k, v := range raw {
		if !knownKeys[k] {
			if m.unknown == nil {
				m.unknown = map[string]json.RawMessage{}
			}
			m.unknown[k] = v
		}
	}
	return m, nil
}

// Clone returns a deep copy of m.
func (m *Meta) Clone() *Meta {
	c := *m
	if m.unknown != nil {
		c.unknown = make(map[string]json.RawMessage, len(m.unknown))
		for k, v := range m.unknown {
			c.unknown[k] = append(json.RawMessage(nil), v...)
		}
	}
	return &c
}

func validBlockSize(bs uint32) bool { return bs >= 512 && bs <= 65536 && bs&(bs-1) == 0 }

const prPrefix = "1:"

// EncodePR returns the PropPR value for persistent reservation state (an
// opaque blob owned by package lu); "" state gives "1:".
func EncodePR(state []byte) (string, error) {
	if len(state) == 0 {
		return prPrefix, nil
	}
	if len(state) > maxPRState {
		return "", fmt.Errorf("zvol: persistent reservation state of %d bytes is too large", len(state))
	}
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(state); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	s := prPrefix + base64.RawStdEncoding.EncodeToString(buf.Bytes())
	if len(s) > MaxPropLen {
		return "", fmt.Errorf("zvol: persistent reservation state needs %d bytes, more than a ZFS user property holds (%d): %w",
			len(s), MaxPropLen, ErrPRTooLarge)
	}
	return s, nil
}

// ErrPRTooLarge is returned (wrapped) by EncodePR when the state does not
// fit one property.
var ErrPRTooLarge = errors.New("persistent reservation state too large")

// DecodePR parses a PropPR value.
func DecodePR(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, prPrefix)
	if !ok {
		return nil, fmt.Errorf("zvol: %s: unknown format (want %q...)", PropPR, prPrefix)
	}
	if rest == "" {
		return nil, nil
	}
	if len(rest) > MaxPropLen {
		return nil, fmt.Errorf("zvol: %s is too long", PropPR)
	}
	z, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("zvol: %s: %w", PropPR, err)
	}
	r := flate.NewReader(bytes.NewReader(z))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, maxPRState+1))
	if err != nil {
		return nil, fmt.Errorf("zvol: %s: %w", PropPR, err)
	}
	if len(out) > maxPRState {
		return nil, fmt.Errorf("zvol: %s: state larger than %d bytes", PropPR, maxPRState)
	}
	return out, nil
}
