package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{hundred, 99.9, 100 * time.Millisecond},
		{hundred, 100, 100 * time.Millisecond},
	} {
		if got := percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tc.in), tc.p, got, tc.want)
		}
	}
	s := stats{lat: ms(3, 1, 2), miscompares: 1}
	if got := s.result("iscsi://x/t/0"); got != "RESULT target=iscsi://x/t/0 ops=3 miscompares=1 p50_us=2000.0 p99_us=3000.0 p999_us=3000.0 max_us=3000.0 mean_us=2000.0" {
		t.Errorf("result line %q", got)
	}
}

func TestArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{}, exitUsage, "one iscsi:// URL required"},
		{[]string{"-duration", "0s", "iscsi://127.0.0.1/t/0"}, exitUsage, "-duration"},
		{[]string{"-duration", "2h", "iscsi://127.0.0.1/t/0"}, exitUsage, "-duration"},
		{[]string{"-interval", "-1s", "iscsi://127.0.0.1/t/0"}, exitUsage, "-interval"},
		{[]string{"-isid", "300", "iscsi://127.0.0.1/t/0"}, exitUsage, "-isid"},
		{[]string{"http://127.0.0.1/t/0"}, exitUsage, "not an iscsi:// URL"},
		{[]string{"iscsi://127.0.0.1/t"}, exitUsage, "want iscsi://"},
		{[]string{"-bogus", "iscsi://127.0.0.1/t/0"}, exitUsage, "flag provided but not defined"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.msg)
		}
	}
}

func TestUnsupported(t *testing.T) {
	sense := func(key, asc, ascq byte) []byte {
		b := make([]byte, 18)
		b[0], b[2], b[7], b[12], b[13] = 0x70, key, 10, asc, ascq
		return b
	}
	for _, tc := range []struct {
		r    initiator.Response
		want bool
	}{
		{initiator.Response{Status: 2, Sense: sense(5, 0x20, 0)}, true},
		{initiator.Response{Status: 2, Sense: sense(5, 0x24, 0)}, true},
		{initiator.Response{Status: 2, Sense: sense(0xe, 0x1d, 0)}, false},
		{initiator.Response{Status: 2, Sense: sense(2, 0x04, 0x0b)}, false},
		{initiator.Response{Status: 0}, false},
	} {
		if _, got := unsupported(tc.r); got != tc.want {
			t.Errorf("unsupported(%v) = %v", tc.r, got)
		}
	}
}

func TestHeartbeatRecord(t *testing.T) {
	a, b := heartbeat(1, 512), heartbeat(2, 512)
	if len(a) != 512 || !bytes.HasPrefix(a, []byte("COSTARHB")) || bytes.Equal(a, b) {
		t.Errorf("heartbeat records: % x / % x", a[:24], b[:24])
	}
}
