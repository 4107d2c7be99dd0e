package config

import (
	"bytes"
	"testing"
)

func TestPprofListen(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		err  bool
	}{
		{nil, "", false},
		{[]string{"--pprof-listen", "127.0.0.1:6060"}, "127.0.0.1:6060", false},
		{[]string{"--pprof-listen", "[::1]:0"}, "[::1]:0", false},
		{[]string{"--pprof-listen", "localhost:6060"}, "localhost:6060", false},
		{[]string{"--pprof-listen", "0.0.0.0:6060"}, "", true},
		{[]string{"--pprof-listen", "192.0.2.1:6060"}, "", true},
		{[]string{"--pprof-listen", ":6060"}, "", true},
		{[]string{"--pprof-listen", "127.0.0.1"}, "", true},
		{[]string{"--pprof-listen", "127.0.0.1:http"}, "", true},
	} {
		c, err := Load(append([]string{"--state-dir", t.TempDir()}, tc.args...), &bytes.Buffer{})
		if tc.err {
			if err == nil {
				t.Errorf("%v: accepted (%q), want an error", tc.args, c.PprofListen)
			}
			continue
		}
		if err != nil || c.PprofListen != tc.want {
			t.Errorf("%v: %q, %v; want %q", tc.args, c.PprofListen, err, tc.want)
		}
	}
}
