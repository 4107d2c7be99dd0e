package stmf

import "fmt"

// ErrViewNotFound is returned by RemoveView for an entry the LU does not have.
var ErrViewNotFound = fmt.Errorf("stmf: view entry not found")

// RemoveView removes the view entry of g equal to v (host group, target
// group and LUN). Sessions that lose the LUN get REPORTED LUNS DATA HAS
// CHANGED at once. It works whether or not the LU is registered.
func (fw *Framework) RemoveView(g GUID, v ViewEntry) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	entries := fw.views[g]
	for i, e := range entries {
		if e == v {
			rest := append(append([]ViewEntry(nil), entries[:i]...), entries[i+1:]...)
			if len(rest) == 0 {
				delete(fw.views, g)
			} else {
				fw.views[g] = rest
			}
			fw.remapLocked()
			return nil
		}
	}
	return fmt.Errorf("%w: %s LUN %d", ErrViewNotFound, g, v.LUN)
}
