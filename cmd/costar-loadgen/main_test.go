package main

import (
	"bytes"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	const url = "iscsi://127.0.0.1:3260/iqn.2026-11.org.costar:demo/0"
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{url}, true},
		{[]string{"-sessions", "64", "-qd", "32", "-rw", "randrw", "-rwmix", "70", "-fua", "-digests", url}, true},
		{[]string{"-pingpong-serve", "127.0.0.1:0"}, true},
		{[]string{"-pingpong", "127.0.0.1:1", "-req", "48", "-resp", "4144"}, true},
		{nil, false},
		{[]string{"-sessions", "0", url}, false},
		{[]string{"-qd", "300", url}, false},
		{[]string{"-bs", "1000", url}, false},
		{[]string{"-rw", "trim", url}, false},
		{[]string{"-rwmix", "101", url}, false},
		{[]string{"-duration", "0s", url}, false},
		{[]string{"-pingpong", "127.0.0.1:1", url}, false},
		{[]string{"-pingpong", "127.0.0.1:1", "-pingpong-serve", "127.0.0.1:2"}, false},
	} {
		_, err := parseArgs(tc.args, &bytes.Buffer{})
		if (err == nil) != tc.ok {
			t.Errorf("%v: err %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
}

func TestHistPercentiles(t *testing.T) {
	var h hist
	// 1000 samples 1..1000 µs: p50 ~500 µs, p99 ~990 µs, max 1000 µs.
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	var s summary
	s.merge(&h)
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 500 * time.Microsecond}, {99, 990 * time.Microsecond}, {100, 1000 * time.Microsecond}} {
		got := s.percentile(tc.p)
		if got > tc.want || float64(got) < 0.96*float64(tc.want) {
			t.Errorf("p%v = %v, want within 4 %% below %v", tc.p, got, tc.want)
		}
	}
	if s.n != 1000 || s.max != uint64(time.Millisecond) {
		t.Errorf("n %d max %d", s.n, s.max)
	}
	var empty summary
	if empty.percentile(99) != 0 {
		t.Error("empty histogram: want 0")
	}
}

func TestBucketsMonotonic(t *testing.T) {
	prev := -1
	for ns := uint64(0); ns < 1<<40; ns = ns*9/8 + 1 {
		b := bucketOf(ns)
		if b < prev || lowOf(b) > ns {
			t.Fatalf("ns %d: bucket %d (low %d) after %d", ns, b, lowOf(b), prev)
		}
		prev = b
	}
}
