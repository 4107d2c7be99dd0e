package isns

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func tlv(tag, n uint32, v ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, tag)
	b = binary.BigEndian.AppendUint32(b, n)
	return append(b, v...)
}

func TestParseAttrs(t *testing.T) {
	cases := []struct {
		name    string
		in      []byte
		want    []Attr
		wantErr string
	}{
		{"empty", nil, nil, ""},
		{"zero-length value", tlv(32, 0), []Attr{{Tag: 32}}, ""},
		{"string", tlv(32, 4, 'a', 'b', 'c', 0), []Attr{{Tag: 32, Value: []byte("abc\x00")}}, ""},
		{"two", append(tlv(1, 4, 'e', 0, 0, 0), tlv(0, 0)...), []Attr{{Tag: 1, Value: []byte("e\x00\x00\x00")}, {Tag: 0}}, ""},
		{"truncated header", []byte{0, 0, 0, 1, 0, 0}, nil, "truncated attribute header"},
		{"length past the end", tlv(32, 8, 'a'), nil, "exceeds"},
		{"huge length", tlv(32, 0xffffffff), nil, "exceeds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAttrs(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
}

func TestAttrEncodings(t *testing.T) {
	cases := []struct {
		name string
		a    Attr
		want []byte
	}{
		{"string padded with NULs to 4", strAttr(tagEID, "host"), []byte("host\x00\x00\x00\x00")},
		{"string of 3", strAttr(tagEID, "abc"), []byte("abc\x00")},
		{"IPv4 mapped", ipAttr(tagPortalIP, netip.MustParseAddr("192.0.2.1")), append(bytes.Repeat([]byte{0}, 10), 0xff, 0xff, 192, 0, 2, 1)},
		{"TCP port", portAttr(tagPortalPort, 3260), []byte{0, 0, 0x0c, 0xbc}},
	}
	for _, tc := range cases {
		if !bytes.Equal(tc.a.Value, tc.want) {
			t.Errorf("%s: %x, want %x", tc.name, tc.a.Value, tc.want)
		}
	}
	if s := strAttr(tagEID, "host").String(); s != "host" {
		t.Errorf("String() = %q", s)
	}
}

// TestMessageRoundTrip: what encodeMessage writes, readMessage reads back,
// also when the message needs several PDUs.
func TestMessageRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 70000)
	cases := []struct {
		name   string
		status *uint32
		op     []Attr
		pdus   int
	}{
		{"request", nil, []Attr{strAttr(tagEID, "e"), u32Attr(tagEntityProtocol, 2)}, 1},
		{"response", new(uint32), []Attr{strAttr(tagISCSIName, "iqn.x")}, 1},
		{"two PDUs", nil, []Attr{strAttr(tagAlias, long)}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fn := fnDevAttrReg
			if tc.status != nil {
				fn |= fnResponse
			}
			b, err := encodeMessage(fn, flagClient, 7, tc.status, strAttr(tagISCSIName, "src"), []Attr{strAttr(tagEID, "e")}, tc.op)
			if err != nil {
				t.Fatal(err)
			}
			r := bytes.NewReader(b)
			m, err := readMessage(r)
			if err != nil {
				t.Fatal(err)
			}
			if r.Len() != 0 {
				t.Fatalf("%d bytes left", r.Len())
			}
			if m.Header.XID != 7 || m.Header.Function != fn || m.Source.String() != "src" ||
				len(m.Key) != 1 || m.Key[0].String() != "e" || !reflect.DeepEqual(m.Operating, tc.op) {
				t.Fatalf("decoded %+v", m)
			}
			if n := bytes.Count(b, []byte{0, 1, byte(fn >> 8), byte(fn)}); tc.pdus > 1 && n < tc.pdus {
				t.Fatalf("%d PDU headers, want %d", n, tc.pdus)
			}
		})
	}
}

func TestReadMessageRefuses(t *testing.T) {
	hdr := func(ver, fn, n, flags, xid, seq uint16) []byte {
		return Header{Version: ver, Function: fn, Length: n, Flags: flags, XID: xid, Seq: seq}.append(nil)
	}
	first := hdr(1, fnESI, 0, flagFirst, 5, 0)
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"short header", []byte{0, 1, 0}, "EOF"},
		{"version 2", hdr(2, fnESI, 0, flagFirst|flagLast, 1, 0), "version"},
		{"auth block", hdr(1, fnESI, 0, flagFirst|flagLast|flagAuth, 1, 0), "authentication"},
		{"payload missing", hdr(1, fnESI, 8, flagFirst|flagLast, 1, 0), "EOF"},
		{"continuation with another xid", append(first, hdr(1, fnESI, 0, flagLast, 6, 1)...), "does not continue"},
		{"continuation out of sequence", append(first, hdr(1, fnESI, 0, flagLast, 5, 3)...), "does not continue"},
		{"response without status", hdr(1, fnESI|fnResponse, 0, flagFirst|flagLast, 1, 0), "without status"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readMessage(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	// A server cannot make us read more than maxMessage.
	var b []byte
	for i := 0; i < maxMessage/maxPayload+2; i++ {
		b = append(b, hdr(1, fnESI, maxPayload, 0, 1, uint16(i))...)
		b = append(b, make([]byte, maxPayload)...)
	}
	if _, err := readMessage(bytes.NewReader(b)); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("endless message: %v", err)
	}
}

// FuzzReadMessage: any bytes from a server or an ESI peer give a message
// or an error, never a panic, and decoded attributes stay inside the input.
func FuzzReadMessage(f *testing.F) {
	req, _ := encodeMessage(fnESI, flagServer, 3, nil, strAttr(tagISCSIName, "isns"), []Attr{strAttr(tagEID, "e"), ipAttr(tagPortalIP, netip.MustParseAddr("127.0.0.1")), portAttr(tagPortalPort, 3260)}, nil)
	st := uint32(0)
	resp, _ := encodeMessage(fnDevAttrReg|fnResponse, flagServer, 3, &st, Attr{}, []Attr{strAttr(tagEID, "e")}, []Attr{u32Attr(tagESIInterval, 20)})
	f.Add(req)
	f.Add(resp)
	f.Add([]byte{0, 1, 0, 8, 0, 4, 0x0c, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readMessage(bytes.NewReader(b))
		if err != nil {
			return
		}
		n := 0
		for _, a := range append(append([]Attr{m.Source}, m.Key...), m.Operating...) {
			n += len(a.Value)
			_ = a.String()
			_, _ = a.Uint32()
		}
		if n > len(b) {
			t.Fatalf("%d bytes of values from %d bytes of input", n, len(b))
		}
	})
}
