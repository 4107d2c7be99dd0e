package filestore

import (
	"fmt"

	"github.com/costar-project/costar/lu/backing"
)

// Fencing (backing.Fencer): in cluster mode every node has the LU's files
// open and the owner of the moment records its fencing token in the
// metadata (tagFenceToken). Every check reads the region from the medium
// (region.load, which also refreshes the slot to write next), so what the
// other node wrote is what counts. The token is written through the same
// two-slot update as any metadata change: a torn write leaves the previous
// token in force, which only ever lets the new owner fence again.

// Fence implements backing.Fencer: it records token durably unless the
// store already holds a bigger one (backing.ErrFenced).
func (s *Store) Fence(token int64) error {
	if token <= 0 {
		return fmt.Errorf("lu: fencing token %d: must be positive", token)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	md, err := s.fencedMeta(token)
	if err != nil {
		return err
	}
	if md.FenceToken < token {
		md.FenceToken = token
		if err := s.region.store(md); err != nil {
			return err
		}
	}
	s.fence = token
	return nil
}

// CheckFence implements backing.Fencer.
func (s *Store) CheckFence(token int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.fencedMeta(token)
	return err
}

// fencedMeta re-reads the metadata as the medium holds it now (another
// node may have written it) and refuses token when a bigger one is
// recorded. s.mu is held.
func (s *Store) fencedMeta(token int64) (*metadata, error) {
	md, err := s.region.load()
	if err != nil {
		return nil, err
	}
	if md.FenceToken > token {
		return nil, fmt.Errorf("%w: %s holds token %d, this node's is %d", backing.ErrFenced, s.metaBE.Path(), md.FenceToken, token)
	}
	return md, nil
}

// refreshLocked prepares a metadata save: the region is re-read so the
// save goes to the slot not holding the newest copy on the medium, the
// recorded token is kept (a node that has not fenced, or that holds an
// older copy of the metadata, must not lower it), and a fenced node's save
// is refused. An unreadable region is left to the save to overwrite, as
// before fencing existed.
func (s *Store) refreshLocked(md *metadata) error {
	cur, err := s.region.load()
	if err != nil {
		md.FenceToken = max(md.FenceToken, s.fence)
		return nil
	}
	if s.fence != 0 && cur.FenceToken > s.fence {
		return fmt.Errorf("%w: %s holds token %d, this node's is %d", backing.ErrFenced, s.metaBE.Path(), cur.FenceToken, s.fence)
	}
	md.FenceToken = max(md.FenceToken, cur.FenceToken, s.fence)
	return nil
}
