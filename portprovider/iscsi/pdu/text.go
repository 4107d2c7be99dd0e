package pdu

import (
	"bytes"
	"errors"
	"fmt"
)

// Limits of the text key=value format (RFC 7143 6.1).
const (
	MaxKeyLen   = 63
	MaxValueLen = 8192 // large enough for binary CHAP values
)

// Text format errors.
var (
	ErrTextSyntax = errors.New("iscsi: malformed text key")
)

// KV is one key=value pair, in the order it was sent.
type KV struct {
	Key, Value string
}

// ParseText splits a text data segment into pairs. Each pair must be
// "key=value" terminated by a NUL; empty strings between NULs (padding)
// are skipped. Keys must be 1..63 characters of the RFC's key alphabet.
func ParseText(b []byte) ([]KV, error) {
	var out []KV
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return out, fmt.Errorf("%w: pair not NUL-terminated", ErrTextSyntax)
		}
		item := b[:i]
		b = b[i+1:]
		if len(item) == 0 {
			continue
		}
		eq := bytes.IndexByte(item, '=')
		if eq < 0 {
			return out, fmt.Errorf("%w: no '=' in %q", ErrTextSyntax, truncate(item))
		}
		k, v := item[:eq], item[eq+1:]
		if err := checkKey(k); err != nil {
			return out, err
		}
		if len(v) > MaxValueLen {
			return out, fmt.Errorf("%w: value of %s is %d bytes", ErrTextSyntax, k, len(v))
		}
		out = append(out, KV{Key: string(k), Value: string(v)})
	}
	return out, nil
}

func truncate(b []byte) string {
	if len(b) > 32 {
		b = b[:32]
	}
	return string(b)
}

func checkKey(k []byte) error {
	if len(k) == 0 || len(k) > MaxKeyLen {
		return fmt.Errorf("%w: key length %d", ErrTextSyntax, len(k))
	}
	for _, c := range k {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == '+' || c == '@' || c == '_' || c == '#'
		if !ok {
			return fmt.Errorf("%w: bad character 0x%02x in key", ErrTextSyntax, c)
		}
	}
	return nil
}

// AppendText appends "key=value\0".
func AppendText(dst []byte, key, value string) []byte {
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = append(dst, value...)
	return append(dst, 0)
}

// EncodeText encodes pairs in order.
func EncodeText(kvs []KV) []byte {
	var b []byte
	for _, kv := range kvs {
		b = AppendText(b, kv.Key, kv.Value)
	}
	return b
}
