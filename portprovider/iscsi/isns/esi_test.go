package isns

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestESIAnswers: the ESI port answers ESI and SCN with success and the
// key echoed (and records them), refuses other requests with "message not
// supported", and closes on garbage.
func TestESIAnswers(t *testing.T) {
	c := NewClient("host", nil, slog.New(slog.DiscardHandler))
	c.CallTimeout = 2 * time.Second
	port, err := c.esiPort(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, l := range c.esi {
			l.close()
		}
	}()
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String()
	key := []Attr{strAttr(tagEID, "host"), ipAttr(tagPortalIP, netip.MustParseAddr("127.0.0.1")), portAttr(tagPortalPort, 3260)}
	cases := []struct {
		name   string
		fn     uint16
		status uint32
	}{
		{"ESI", fnESI, statusSuccess},
		{"SCN", fnSCN, statusSuccess},
		{"DevAttrReg is not ours to answer", fnDevAttrReg, statusMessageNotSupported},
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i, tc := range cases {
		b, _ := encodeMessage(tc.fn, flagServer, uint16(10+i), nil, strAttr(tagISCSIName, "isns-server"), key, nil)
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		m, err := readMessage(nc)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if m.Header.Function != tc.fn|fnResponse || m.Header.XID != uint16(10+i) || m.Status != tc.status {
			t.Fatalf("%s: answer %+v", tc.name, m)
		}
		// Responses carry no source: the echoed key starts right after the status.
		if got := append([]Attr{m.Source}, m.Key...); len(got) != len(key) || !bytes.Equal(got[0].Value, key[0].Value) {
			t.Fatalf("%s: echoed %v", tc.name, got)
		}
	}
	if esi, scn := c.seen.take(netip.MustParseAddr("127.0.0.1")); esi.IsZero() || !scn {
		t.Fatalf("ESI at %v, SCN %v: not recorded", esi, scn)
	}
	// Garbage: the connection is closed, nothing is answered.
	if _, err := nc.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	// Closed with bytes unread: EOF or a reset, never an answer or a timeout.
	n, err := nc.Read(make([]byte, 64))
	var ne net.Error
	if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("after garbage: read %d, %v; want the connection closed", n, err)
	}
}
