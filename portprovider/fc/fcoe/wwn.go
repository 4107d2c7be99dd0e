package fcoe

import "github.com/costar-project/costar/portprovider/fc"

// DeriveNames returns the names of a VN_Port on an ENode with MAC mac, in
// FC-BB-5's MAC-based forms: the port name is NAA 1 (0x1000 and the MAC),
// the node name NAA 2 (0x2 and a zero 12-bit field, then the MAC).
//
// The port name is the NAA 1 form on purpose: between VN2VN ports the one
// with the greater port name sends PLOGI after the point-to-point FLOGI
// (libfc does so), and this target only answers logins. Linux derives its
// initiator's port name as NAA 2 (0x2000 and its MAC), which always sorts
// above an NAA 1 name, so the initiator logs in.
func DeriveNames(mac MAC) (port, node fc.WWN) {
	port = fc.WWN{0x10, 0x00, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]}
	node = fc.WWN{0x20, 0x00, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]}
	return port, node
}
