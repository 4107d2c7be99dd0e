package main

import (
	"bytes"
	"testing"
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
