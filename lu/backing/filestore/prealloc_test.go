package filestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/costar-project/costar/internal/progress"
)

// allocated is the file space a file holds, in bytes.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func TestPreallocate(t *testing.T) {
	const size = 3 * preallocChunk / 2 // two chunks: progress in between
	for _, tc := range []struct {
		name     string
		mode     string
		existing int64 // size of a data file that exists before; 0 = none
		// minAlloc and maxAlloc bound the space held afterwards.
		minAlloc, maxAlloc int64
	}{
		{"sparse", "", 0, 0, 1 << 20},
		{"falloc new file", PreallocFalloc, 0, headerDataOffset + size, headerDataOffset + size + 1<<20},
		{"full new file", PreallocFull, 0, headerDataOffset + size, headerDataOffset + size + 1<<20},
		{"falloc grows an existing file: only the new part", PreallocFalloc, 1 << 20, headerDataOffset + size - 1<<20, headerDataOffset + size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lu.img")
			if tc.existing > 0 {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(path, tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			var events []progress.Event
			ctx := progress.With(context.Background(), func(e progress.Event) { events = append(events, e) })
			s, err := Create(ctx, Options{DataFile: path, Size: size, Preallocation: tc.mode, Log: quietLog()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if a := allocated(t, path); a < tc.minAlloc || a > tc.maxAlloc {
				t.Errorf("%d bytes allocated, want %d..%d", a, tc.minAlloc, tc.maxAlloc)
			}
			if tc.mode == "" {
				if len(events) != 0 {
					t.Errorf("sparse create reported %v", events)
				}
				return
			}
			// Progress: from 0 to the total, in order, never past it.
			if len(events) < 3 || events[0].Done != 0 || events[len(events)-1].Done != events[0].Total {
				t.Fatalf("events %v", events)
			}
			for i := 1; i < len(events); i++ {
				if events[i].Done <= events[i-1].Done || events[i].Done > events[i].Total || events[i].Phase != events[0].Phase {
					t.Fatalf("events out of order: %v", events)
				}
			}
		})
	}
}

// A create cancelled while it allocates leaves the file as it found it:
// a new file is removed, an existing one cut back to its size.
func TestPreallocateCancelled(t *testing.T) {
	for _, existing := range []int64{0, 4096} {
		path := filepath.Join(t.TempDir(), "lu.img")
		if existing > 0 {
			if err := os.WriteFile(path, make([]byte, existing), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		seen := 0
		ctx = progress.With(ctx, func(e progress.Event) {
			if e.Done > 0 { // the first chunk is done: cancel mid-way
				seen++
				cancel()
			}
		})
		_, err := Create(ctx, Options{DataFile: path, Size: 4 * preallocChunk, Preallocation: PreallocFull, Log: quietLog()})
		if !errors.Is(err, context.Canceled) || seen != 1 {
			t.Fatalf("existing %d: err %v after %d progress events, want a cancel after one", existing, err, seen)
		}
		fi, serr := os.Stat(path)
		switch {
		case existing == 0 && !errors.Is(serr, os.ErrNotExist):
			t.Errorf("the new file is still there: %v", serr)
		case existing > 0 && (serr != nil || fi.Size() != existing):
			t.Errorf("existing file not cut back: %v %v", fi, serr)
		}
	}
}

func TestPreallocateRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lu.img")
	if _, err := Create(context.Background(), Options{DataFile: path, Size: 1 << 20, Preallocation: "metadata", Log: quietLog()}); err == nil {
		t.Fatal("unknown mode accepted")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused create left %s: %v", path, err)
	}
}
