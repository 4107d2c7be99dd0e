package filestore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCreateSyncsDirectories: every file Create and the first SaveMeta
// make (data, meta, atomic write journal) has its directory fsynced
// before the caller can record it anywhere; files that already existed
// do not.
func TestCreateSyncsDirectories(t *testing.T) {
	type synced struct{ dir, created string }
	dataDir, metaDir := t.TempDir(), t.TempDir()
	tests := []struct {
		name     string
		data     string
		meta     string
		preexist []string
		want     []string // created files whose directory was synced, in order
	}{
		{"header", filepath.Join(dataDir, "a.img"), "", nil,
			[]string{filepath.Join(dataDir, "a.img"), filepath.Join(dataDir, "a.img.atomic")}},
		{"meta file elsewhere", filepath.Join(dataDir, "b.img"), filepath.Join(metaDir, "b.meta"), nil,
			[]string{filepath.Join(dataDir, "b.img"), filepath.Join(metaDir, "b.meta"), filepath.Join(metaDir, "b.meta.atomic")}},
		{"existing data file", filepath.Join(dataDir, "c.img"), "", []string{filepath.Join(dataDir, "c.img")},
			[]string{filepath.Join(dataDir, "c.img.atomic")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.preexist {
				if err := os.WriteFile(p, make([]byte, 2<<20), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var got []synced
			s, err := Create(context.Background(), Options{DataFile: tc.data, MetaFile: tc.meta, Size: 1 << 20, Log: quietLog(),
				DirSynced: func(dir, created string) { got = append(got, synced{dir, created}) }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.SaveMeta(newMeta("d", tc.data)); err != nil {
				t.Fatal(err)
			}
			if s.JournalPath() == "" || !slices.Contains(tc.want, s.JournalPath()) {
				t.Fatalf("journal %q not among the expected files", s.JournalPath())
			}
			var files []string
			for _, g := range got {
				if g.dir != filepath.Dir(g.created) {
					t.Errorf("synced %s for %s", g.dir, g.created)
				}
				files = append(files, g.created)
			}
			if !slices.Equal(files, tc.want) {
				t.Errorf("directories synced for %q, want %q", files, tc.want)
			}
		})
	}
}
