package lu

import (
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Attach implements stmf.Attacher: the framework that registers the LU
// hands it the host it raises unit attentions and aborts tasks through.
func (d *Device) Attach(h stmf.LUHost) { d.host.Store(&h) }

// hostOf is the LU's host, nil while the LU is not registered (as in unit
// tests that run it alone).
func (d *Device) hostOf() stmf.LUHost {
	if h := d.host.Load(); h != nil {
		return *h
	}
	return nil
}

// raiseUA queues a unit attention for every nexus that sees the LU.
func (d *Device) raiseUA(asc scsi.ASC) {
	if h := d.hostOf(); h != nil {
		h.RaiseUA(asc, nil)
	}
}
