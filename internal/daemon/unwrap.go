package daemon

import "github.com/costar-project/costar/stmf"

// UnwrapLU lets the LU provider recognise its own LU behind the adapter
// (EXTENDED COPY between two LUs resolves the other LU as *lu.Device).
func (d *luDisk) UnwrapLU() stmf.LogicalUnit { return d.Device }

var _ stmf.LUUnwrapper = (*luDisk)(nil)
