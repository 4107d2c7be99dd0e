package fcoe

import "github.com/costar-project/costar/portprovider/fc"

// DeriveNames returns the names of a VN_Port on an ENode with MAC mac, in
// FC-BB-5's MAC-based NAA 2 form (0x2, a 12-bit field, the MAC): the node
// name with field 0, the port name with field 1, as Linux names a virtual
// port's. NAA 2 is also a valid SCSI designator (VPD page 0x83), which
// NAA 1 is not.
func DeriveNames(mac MAC) (port, node fc.WWN) {
	port = fc.WWN{0x20, 0x01, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]}
	node = fc.WWN{0x20, 0x00, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]}
	return port, node
}
