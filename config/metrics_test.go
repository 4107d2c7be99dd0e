package config

import (
	"bytes"
	"os"
	"testing"
)

func TestMetricsListen(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
		err  bool
	}{
		{nil, "", "", false}, // off by default
		{[]string{"--metrics-listen", "127.0.0.1:9563"}, "", "127.0.0.1:9563", false},
		{[]string{"--metrics-listen", "[::1]:0"}, "", "[::1]:0", false},
		{nil, "127.0.0.1:9100", "127.0.0.1:9100", false},
		{[]string{"--metrics-listen", "127.0.0.1:9563"}, "127.0.0.1:9100", "127.0.0.1:9563", false},
		{[]string{"--metrics-listen", "9563"}, "", "", true},
		{[]string{"--metrics-listen", "127.0.0.1:http"}, "", "", true},
		{[]string{"--metrics-listen", "127.0.0.1:70000"}, "", "", true},
	} {
		t.Setenv("STMFD_METRICS_LISTEN", tc.env)
		if tc.env == "" {
			os.Unsetenv("STMFD_METRICS_LISTEN")
		}
		c, err := Load(tc.args, &bytes.Buffer{})
		if (err != nil) != tc.err || (err == nil && c.MetricsListen != tc.want) {
			t.Errorf("Load(%v) env %q: %+v, %v; want %q err=%v", tc.args, tc.env, c, err, tc.want, tc.err)
		}
	}
}
