package zvol

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in        string
		name, alt string
		bad       bool
	}{
		{in: "/dev/zvol/tank/vol1", name: "tank/vol1"},
		{in: "/dev/zvol/tank/vms/vm-100-disk-0", name: "tank/vms/vm-100-disk-0"},
		{in: "/dev/zvol/rdsk/tank/vol1", name: "tank/vol1", alt: "rdsk/tank/vol1"},
		{in: "/dev/zvol/dsk/tank/vms/vm-100-disk-0", name: "tank/vms/vm-100-disk-0", alt: "dsk/tank/vms/vm-100-disk-0"},
		{in: "/dev/zvol//tank/./vol1", name: "tank/vol1"},
		{in: "/dev/zvol/tank/a:b.c_d-e f", name: "tank/a:b.c_d-e f"},
		// A Linux pool called rdsk: only two components, so no illumos reading.
		{in: "/dev/zvol/rdsk/vol1", name: "rdsk/vol1"},
		{in: "/dev/zvol/dsk/vol1", name: "dsk/vol1"},
		{in: "/dev/zvol/tank", bad: true},              // a pool, not a volume
		{in: "/dev/zvol/rdsk/tank", name: "rdsk/tank"}, // pool rdsk, volume tank
		{in: "/dev/zvol/", bad: true},
		{in: "/dev/zvol", bad: true},
		{in: "", bad: true},
		{in: "/dev/sdb", bad: true},
		{in: "/var/lib/costar/lu0.img", bad: true},
		{in: "tank/vol1", bad: true},
		{in: "/dev/zvol/tank/vol1@snap", bad: true},
		{in: "/dev/zvol/tank/vol1#bm", bad: true},
		{in: "/dev/zvol/tank/../etc/passwd", bad: true}, // cleans to /dev/etc/passwd
		{in: "/dev/zvol/1tank/vol", bad: true},          // pool names start with a letter
		{in: "/dev/zvol/tank/vol\x00x", bad: true},
		{in: "/dev/zvol/tank/" + strings.Repeat("v", 300), bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePath(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParsePath(%q) = %+v, want an error", tt.in, p)
				}
				if !errors.Is(err, ErrNotZvolPath) {
					t.Errorf("error %v does not wrap ErrNotZvolPath", err)
				}
				if IsZvolPath(tt.in) {
					t.Errorf("IsZvolPath(%q) = true", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePath(%q): %v", tt.in, err)
			}
			if p.Name != tt.name || p.Alt != tt.alt {
				t.Errorf("ParsePath(%q) = %+v, want name %q alt %q", tt.in, p, tt.name, tt.alt)
			}
			if DevicePath(p.Name) != "/dev/zvol/"+tt.name {
				t.Errorf("DevicePath(%q) = %q", p.Name, DevicePath(p.Name))
			}
		})
	}
}

func TestSplitSnapshot(t *testing.T) {
	tests := []struct {
		in        string
		vol, snap string
		bad       bool
	}{
		{in: "tank/vol@s1", vol: "tank/vol", snap: "s1"},
		{in: "tank/a/b@daily-2026.01.01", vol: "tank/a/b", snap: "daily-2026.01.01"},
		{in: "tank/vol", bad: true},
		{in: "tank/vol@", bad: true},
		{in: "tank@s", bad: true},
		{in: "tank/vol@a@b", bad: true},
		{in: "tank/vol@a/b", bad: true},
		{in: "@s", bad: true},
	}
	for _, tt := range tests {
		vol, snap, err := SplitSnapshot(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("SplitSnapshot(%q) = %q %q, want an error", tt.in, vol, snap)
			}
			continue
		}
		if err != nil || vol != tt.vol || snap != tt.snap {
			t.Errorf("SplitSnapshot(%q) = %q, %q, %v; want %q, %q", tt.in, vol, snap, err, tt.vol, tt.snap)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/dev/zvol/tank/v", "/dev/zvol/rdsk/tank/v", "/dev/zvol/dsk/a/b/c", "/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		if ValidVolumeName(p.Name) != nil {
			t.Fatalf("ParsePath(%q) accepted invalid name %q", s, p.Name)
		}
		if p.Alt != "" && ValidVolumeName(p.Alt) != nil {
			t.Fatalf("ParsePath(%q) gave invalid alt %q", s, p.Alt)
		}
	})
}

func TestParsePathIn(t *testing.T) {
	p, err := ParsePathIn("/tmp/x/dev/zvol/", "/tmp/x/dev/zvol/rdsk/tank/v")
	if err != nil || p.Name != "tank/v" || p.Alt != "rdsk/tank/v" {
		t.Fatalf("ParsePathIn = %+v, %v", p, err)
	}
	if _, err := ParsePathIn("/tmp/x/dev/zvol", "/dev/zvol/tank/v"); err == nil {
		t.Fatal("a path outside the directory was accepted")
	}
}
