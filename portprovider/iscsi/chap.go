package iscsi

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

// CHAP algorithm identifiers: 5 is MD5 (RFC 7143 12.1.3); 6 and 7 are
// the SHA-1 and SHA-256 values newer initiators offer.
const (
	chapMD5    = 5
	chapSHA1   = 6
	chapSHA256 = 7
)

func chapHash(alg int) func() hash.Hash {
	switch alg {
	case chapMD5:
		return md5.New
	case chapSHA1:
		return sha1.New
	case chapSHA256:
		return sha256.New
	}
	return nil
}

// chapState runs the target side of one CHAP exchange.
type chapState struct {
	creds     CHAPCredentials
	alg       int
	id        byte
	challenge []byte
	step      int // 0: want CHAP_A, 1: want CHAP_N/CHAP_R, 2: done
	// failStatus is the login status of a failed response check (0201,
	// or 0301 when a verifier could not be reached).
	failStatus loginStatus
}

// decodeBinary decodes a CHAP binary value: 0x hex or 0b base64.
func decodeBinary(v string) ([]byte, bool) {
	if len(v) < 3 {
		return nil, false
	}
	switch v[:2] {
	case "0x", "0X":
		b, err := hex.DecodeString(v[2:])
		return b, err == nil
	case "0b", "0B":
		b, err := base64.StdEncoding.DecodeString(v[2:])
		return b, err == nil
	}
	return nil, false
}

func chapResponse(h func() hash.Hash, id byte, secret string, challenge []byte) []byte {
	m := h()
	m.Write([]byte{id})
	m.Write([]byte(secret))
	m.Write(challenge)
	return m.Sum(nil)
}

// chapUserMatches compares the CHAP_N an initiator sent with the expected
// user name. User names are exact, except that a user name that is an
// iSCSI name (the default: the initiator's own name, which we hold in
// canonical form) matches case-insensitively, as iSCSI names do.
func chapUserMatches(got, want string) bool {
	return got == want || validName(want) && CanonicalName(got) == CanonicalName(want)
}

// handle consumes the CHAP keys of one login request. It returns the keys
// to answer, whether the exchange is complete, and a failure.
func (a *chapState) handle(keys map[string]string) (resp []pdu.KV, done bool, fail string) {
	switch a.step {
	case 0:
		list, ok := keys["CHAP_A"]
		if !ok {
			return nil, false, ""
		}
		for _, s := range strings.Split(list, ",") {
			n, err := strconv.Atoi(s)
			if err == nil && chapHash(n) != nil && (a.creds.Verifier == nil || n == chapMD5) {
				a.alg = n
				break
			}
		}
		if a.alg == 0 {
			return []pdu.KV{{Key: "CHAP_A", Value: valReject}}, false, "no supported CHAP algorithm"
		}
		var rnd [1 + 32]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, false, "no randomness"
		}
		a.id = rnd[0]
		a.challenge = rnd[1 : 1+chapHash(a.alg)().Size()]
		if len(a.challenge) < 16 {
			a.challenge = rnd[1:17]
		}
		a.step = 1
		return []pdu.KV{
			{Key: "CHAP_A", Value: strconv.Itoa(a.alg)},
			{Key: "CHAP_I", Value: strconv.Itoa(int(a.id))},
			{Key: "CHAP_C", Value: "0x" + hex.EncodeToString(a.challenge)},
		}, false, ""
	case 1:
		name, okN := keys["CHAP_N"]
		rv, okR := keys["CHAP_R"]
		if !okN || !okR {
			return nil, false, "CHAP_N/CHAP_R missing"
		}
		got, ok := decodeBinary(rv)
		if !ok {
			return nil, false, "malformed CHAP_R"
		}
		if fail, st := a.checkResponse(name, got); fail != "" { // chap_verify.go
			a.failStatus = st
			return nil, false, fail
		}
		h := chapHash(a.alg)
		a.step = 2
		iv, mutualI := keys["CHAP_I"]
		cv, mutualC := keys["CHAP_C"]
		if !mutualI && !mutualC {
			return nil, true, ""
		}
		if !mutualI || !mutualC || a.creds.TargetSecret == "" {
			return nil, false, "mutual CHAP not possible"
		}
		id, err := strconv.Atoi(iv)
		ic, ok := decodeBinary(cv)
		if err != nil || id < 0 || id > 255 || !ok || len(ic) == 0 || len(ic) > 1024 {
			return nil, false, "malformed mutual CHAP challenge"
		}
		if bytes.Equal(ic, a.challenge) {
			return nil, false, "reflected CHAP challenge"
		}
		if a.creds.TargetSecret == a.creds.InitiatorSecret {
			return nil, false, "mutual CHAP secrets must differ"
		}
		r := chapResponse(h, byte(id), a.creds.TargetSecret, ic)
		return []pdu.KV{
			{Key: "CHAP_N", Value: a.creds.TargetUser},
			{Key: "CHAP_R", Value: "0x" + hex.EncodeToString(r)},
		}, true, ""
	}
	return nil, true, ""
}
