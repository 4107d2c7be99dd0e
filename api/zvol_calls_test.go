package api

import "testing"

func TestSplitCloneSource(t *testing.T) {
	tests := []struct {
		in, guid, vol, snap string
		bad                 bool
	}{
		{in: "600144f0c0a80101000067a1b2c30001@s1", guid: "600144F0C0A80101000067A1B2C30001", snap: "s1"},
		{in: "tank/vol@daily", vol: "tank/vol", snap: "daily"},
		{in: "600144f0c0a80101000067a1b2c30001", bad: true},
		{in: "@s1", bad: true},
		{in: "tank/vol@", bad: true},
		{in: "tank@s", bad: true},
		{in: "tank/vol@a@b", bad: true},
	}
	for _, tt := range tests {
		guid, vol, snap, err := SplitCloneSource(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("SplitCloneSource(%q) = %q %q %q, want an error", tt.in, guid, vol, snap)
			}
			continue
		}
		if err != nil || guid != tt.guid || vol != tt.vol || snap != tt.snap {
			t.Errorf("SplitCloneSource(%q) = %q %q %q %v", tt.in, guid, vol, snap, err)
		}
	}
}

func TestValidVolBlockSize(t *testing.T) {
	for n, want := range map[uint32]bool{0: false, 256: false, 512: true, 4096: true, 16384: true, 131072: true, 262144: false, 3000: false} {
		if ValidVolBlockSize(n) != want {
			t.Errorf("ValidVolBlockSize(%d) = %v", n, !want)
		}
	}
}
