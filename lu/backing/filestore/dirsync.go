package filestore

import (
	"fmt"
	"os"
	"path/filepath"
)

// syncParentDir makes the creation of path durable: fsync of a new file
// covers its contents, not the directory entry that names it. Without
// this, a power cut after the daemon's state file (which is durable)
// names a new data, meta or journal file can leave the name missing.
func (s *Store) syncParentDir(path string) error {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("lu: opening %s to make %s durable: %w", dir, filepath.Base(path), err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("lu: syncing directory %s after creating %s: %w", dir, filepath.Base(path), err)
	}
	if s.dirSynced != nil {
		s.dirSynced(dir, path)
	}
	return nil
}
