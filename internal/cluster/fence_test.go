package cluster

import (
	"testing"
	"time"
)

// The self-fence deadline on a fake clock: times are offsets from t0.
func TestFenceClock(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const ttl, margin = 5 * time.Second, time.Second
	type step struct {
		grantSent time.Duration // renewal sent at (negative: none this step)
		grantTTL  time.Duration // TTL etcd answered
		lose      bool
		now       time.Duration
		live      bool
		left      time.Duration
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"no lease: never live", []step{{grantSent: -1, now: 0, live: false}}},
		{"grant: live until TTL-margin after the send", []step{
			{grantSent: 0, grantTTL: ttl, now: 3 * time.Second, live: true, left: time.Second},
			{grantSent: -1, now: 4*time.Second - time.Nanosecond, live: true, left: time.Nanosecond},
			{grantSent: -1, now: 4 * time.Second, live: false},
		}},
		{"renewal moves the deadline from its send time", []step{
			{grantSent: 0, grantTTL: ttl, now: time.Second, live: true, left: 3 * time.Second},
			{grantSent: 2 * time.Second, grantTTL: ttl, now: 5 * time.Second, live: true, left: time.Second},
			{grantSent: -1, now: 6 * time.Second, live: false},
		}},
		{"a late answer to an old renewal never shortens the deadline", []step{
			{grantSent: 3 * time.Second, grantTTL: ttl, now: 3 * time.Second, live: true, left: 4 * time.Second},
			{grantSent: time.Second, grantTTL: ttl, now: 3 * time.Second, live: true, left: 4 * time.Second},
		}},
		{"a shorter TTL from etcd wins, a longer one does not", []step{
			{grantSent: 0, grantTTL: 3 * time.Second, now: time.Second, live: true, left: time.Second},
			{grantSent: -1, now: 2 * time.Second, live: false},
			{grantSent: 2 * time.Second, grantTTL: 60 * time.Second, now: 2 * time.Second, live: true, left: 4 * time.Second},
		}},
		{"lost: dead at once", []step{
			{grantSent: 0, grantTTL: ttl, now: time.Second, live: true, left: 3 * time.Second},
			{grantSent: -1, lose: true, now: time.Second, live: false},
		}},
		{"renewal failing past the deadline: fenced before etcd can expire the lease", []step{
			{grantSent: 0, grantTTL: ttl, now: 0, live: true, left: 4 * time.Second},
			{grantSent: -1, now: ttl - margin, live: false},
			{grantSent: -1, now: ttl, live: false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := fenceClock{ttl: ttl, margin: margin}
			for i, s := range tc.steps {
				if s.lose {
					f.lost()
				}
				if s.grantSent >= 0 && s.grantTTL != 0 {
					f.granted(at(s.grantSent), s.grantTTL)
				}
				if got := f.live(at(s.now)); got != s.live {
					t.Fatalf("step %d: live(%v) = %v, want %v", i, s.now, got, s.live)
				}
				if got := f.remaining(at(s.now)); s.live && got != s.left {
					t.Fatalf("step %d: remaining = %v, want %v", i, got, s.left)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Endpoints: []string{"http://127.0.0.1:2379"}, Node: "a"}, true},
		{"no endpoints", Config{Node: "a"}, false},
		{"no node", Config{Endpoints: []string{"x"}}, false},
		{"slash in node", Config{Endpoints: []string{"x"}, Node: "a/b"}, false},
		{"TTL not whole seconds", Config{Endpoints: []string{"x"}, Node: "a", TTL: 2500 * time.Millisecond}, false},
		{"TTL too short", Config{Endpoints: []string{"x"}, Node: "a", TTL: time.Second}, false},
		{"renew+margin over TTL", Config{Endpoints: []string{"x"}, Node: "a", TTL: 2 * time.Second, Renew: time.Second, Margin: time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.cfg.withDefaults()
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (c.TTL != DefaultTTL || c.Renew != time.Second || c.Margin != time.Second || c.Prefix != DefaultPrefix) {
				t.Errorf("defaults: %+v", c)
			}
		})
	}
}
