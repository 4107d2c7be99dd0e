package lu

import (
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// transportID is a TransportID from a PERSISTENT RESERVE OUT parameter list.
type transportID struct {
	id  scsi.TransportID
	off int // byte offset in the parameter list, for sense data
}

// parseTransportIDs decodes a list of TransportIDs that exactly fills b.
// base is b's offset in the parameter list. A malformed TransportID, or
// one of another protocol than the I_T nexus the command came through
// (proto), is INVALID FIELD IN PARAMETER LIST pointing at it.
func parseTransportIDs(b []byte, base int, proto scsi.ProtocolID) ([]transportID, *stmf.Result) {
	var out []transportID
	for off := 0; off < len(b); {
		id, n, err := scsi.ParseTransportID(b[off:])
		if err != nil || id.Protocol() != proto {
			return nil, fail(invalidParam(base+off, -1))
		}
		out = append(out, transportID{id: id, off: base + off})
		if len(out) > maxRegistrations {
			return nil, fail(invalidParam(base+off, -1))
		}
		off += n
	}
	return out, nil
}
