package fcoe

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/costar-project/costar/portprovider/fc"
)

// FIP (FC-BB-6 clause 7): the FCoE Initialization Protocol frames a VN2VN
// port exchanges — probe, claim and beacon — and the FIP encapsulation of
// the p2p FLOGI and LOGO that Linux libfcoe uses between VN_Ports.

// Ethertypes and the addresses VN2VN uses.
const (
	EtherTypeFIP  = 0x8914
	EtherTypeFCoE = 0x8906
	ethHdrLen     = 14
	fipHdrLen     = 10
	fipVersion    = 1
	// vnFCMap is the FC-MAP of VN2VN: a VN_Port's MAC address is these 24
	// bits followed by its N_Port ID.
	vnFCMap = 0x0efd00
)

// AllVN2VNMACs is the multicast group of every VN2VN ENode (FC-BB-6).
var AllVN2VNMACs = MAC{0x01, 0x10, 0x18, 0x01, 0x00, 0x04}

// FIP operation codes and subcodes.
const (
	opLS    = 0x0002 // encapsulated extended link service
	opVN2VN = 0x0005

	scLSReq = 0x01
	scLSRep = 0x02

	SubProbeReq    = 0x01
	SubProbeRep    = 0x02
	SubClaimNotify = 0x03
	SubClaimRep    = 0x04
	SubBeacon      = 0x05
)

// FIP descriptor types (FC-BB-6 table 40) this adapter reads or writes.
const (
	dtMAC       = 2
	dtName      = 4
	dtFCoESize  = 6
	dtFLOGI     = 7
	dtFDISC     = 8
	dtLOGO      = 9
	dtELP       = 10
	dtVNID      = 11
	dtFC4F      = 15
	dtVendorMin = 128 // descriptors from here on may be ignored

	macDescLen  = 8
	nameDescLen = 12
	vnDescLen   = 20
	fc4DescLen  = 164 // header, reserved, 32-byte type map, 128-byte feature map
	sizeDescLen = 4
)

// flagRecOrP2P is the FIP flag a VN2VN port sets on a probe of a recorded
// address (and that marks point-to-point mode); such a port wants a fresh
// probe from everyone.
const flagRecOrP2P = 0x0008

// FCP's FC-4 feature bits in a claim (FC-GS: target 1, initiator 2).
const (
	fc4FeatTarget    = 0x1
	fc4FeatInitiator = 0x2
)

// MAC is an Ethernet address.
type MAC [6]byte

func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// unicast reports an address a VN2VN peer accepts as an ENode MAC: not
// zero, not multicast.
func (m MAC) unicast() bool { return m != MAC{} && m[0]&1 == 0 }

// VNMAC is the MAC address of the VN_Port with N_Port ID id.
func VNMAC(id uint32) MAC {
	return MAC{vnFCMap >> 16, vnFCMap >> 8 & 0xff, vnFCMap & 0xff, byte(id >> 16), byte(id >> 8), byte(id)}
}

// VNMsg is one VN2VN FIP frame: a probe request or reply, a claim
// notification or response, or a beacon.
type VNMsg struct {
	Sub      byte
	Flags    uint16
	ENode    MAC // the sender's ENode MAC (MAC descriptor)
	NodeName fc.WWN
	VNMAC    MAC // the VN_Port MAC of the VN_Port ID descriptor
	PortID   uint32
	PortName fc.WWN
	// Claims only: FCP roles and the largest FCoE frame the sender takes.
	Target, Initiator bool
	FCoESize          uint16
}

func isClaim(sub byte) bool { return sub == SubClaimNotify || sub == SubClaimRep }

// errFIP is wrapped by every FIP parse error.
var errFIP = errors.New("fcoe: bad FIP frame")

// fipHeader is the decoded FIP header.
type fipHeader struct {
	op    uint16
	sub   byte
	flags uint16
	descs []byte // the descriptor list, fip_dl_len words long
}

// parseFIPHeader decodes the FIP header after the Ethernet header.
func parseFIPHeader(b []byte) (fipHeader, error) {
	var h fipHeader
	if len(b) < fipHdrLen {
		return h, fmt.Errorf("%w: %d bytes", errFIP, len(b))
	}
	if b[0]>>4 != fipVersion {
		return h, fmt.Errorf("%w: version %d", errFIP, b[0]>>4)
	}
	h.op = binary.BigEndian.Uint16(b[2:])
	h.sub = b[5]
	n := int(binary.BigEndian.Uint16(b[6:])) * 4
	h.flags = binary.BigEndian.Uint16(b[8:])
	if fipHdrLen+n > len(b) {
		return h, fmt.Errorf("%w: descriptor list of %d bytes in %d", errFIP, n, len(b)-fipHdrLen)
	}
	h.descs = b[fipHdrLen : fipHdrLen+n]
	return h, nil
}

// nextDesc splits the first descriptor off d.
func nextDesc(d []byte) (typ byte, desc, rest []byte, err error) {
	if len(d) < 2 {
		return 0, nil, nil, fmt.Errorf("%w: truncated descriptor", errFIP)
	}
	n := int(d[1]) * 4
	if n < 4 || n > len(d) {
		return 0, nil, nil, fmt.Errorf("%w: descriptor %d of %d bytes in %d", errFIP, d[0], n, len(d))
	}
	return d[0], d[:n], d[n:], nil
}

// ParseVN parses a VN2VN FIP frame (after the Ethernet header) with the
// rules Linux applies: every descriptor the subcode needs exactly once,
// each of its exact length, a unicast ENode MAC, unknown critical
// descriptors refused and vendor ones ignored.
func ParseVN(b []byte) (VNMsg, error) {
	var m VNMsg
	h, err := parseFIPHeader(b)
	if err != nil {
		return m, err
	}
	if h.op != opVN2VN {
		return m, fmt.Errorf("%w: op %#x is not VN2VN", errFIP, h.op)
	}
	m.Sub, m.Flags = h.sub, h.flags
	var need uint32
	switch m.Sub {
	case SubProbeReq, SubProbeRep, SubBeacon:
		need = 1<<dtMAC | 1<<dtName | 1<<dtVNID
	case SubClaimNotify, SubClaimRep:
		need = 1<<dtMAC | 1<<dtName | 1<<dtVNID | 1<<dtFC4F | 1<<dtFCoESize
	default:
		return m, fmt.Errorf("%w: VN2VN subcode %d", errFIP, m.Sub)
	}
	for d := h.descs; len(d) > 0; {
		typ, desc, rest, err := nextDesc(d)
		if err != nil {
			return m, err
		}
		d = rest
		if typ >= dtVendorMin {
			continue
		}
		if typ >= 32 || need&(1<<typ) == 0 {
			return m, fmt.Errorf("%w: unexpected or repeated descriptor %d in subcode %d", errFIP, typ, m.Sub)
		}
		need &^= 1 << typ
		want := map[byte]int{dtMAC: macDescLen, dtName: nameDescLen, dtVNID: vnDescLen, dtFC4F: fc4DescLen, dtFCoESize: sizeDescLen}[typ]
		if len(desc) != want {
			return m, fmt.Errorf("%w: descriptor %d of %d bytes, want %d", errFIP, typ, len(desc), want)
		}
		switch typ {
		case dtMAC:
			copy(m.ENode[:], desc[2:8])
			if !m.ENode.unicast() {
				return m, fmt.Errorf("%w: ENode MAC %s is not unicast", errFIP, m.ENode)
			}
		case dtName:
			copy(m.NodeName[:], desc[4:12])
		case dtVNID:
			copy(m.VNMAC[:], desc[2:8])
			m.PortID = uint32(desc[9])<<16 | uint32(desc[10])<<8 | uint32(desc[11])
			copy(m.PortName[:], desc[12:20])
		case dtFC4F:
			feat := binary.BigEndian.Uint32(desc[4+32+4*(fc.TypeFCP*4/32):]) >> (fc.TypeFCP * 4 % 32)
			m.Target, m.Initiator = feat&fc4FeatTarget != 0, feat&fc4FeatInitiator != 0
		case dtFCoESize:
			m.FCoESize = binary.BigEndian.Uint16(desc[2:])
		}
	}
	if need != 0 {
		return m, fmt.Errorf("%w: subcode %d lacks descriptors (mask %#x)", errFIP, m.Sub, need)
	}
	return m, nil
}

// appendEth appends an Ethernet header.
func appendEth(b []byte, dst, src MAC, etype uint16) []byte {
	b = append(b, dst[:]...)
	b = append(b, src[:]...)
	return binary.BigEndian.AppendUint16(b, etype)
}

func appendFIPHeader(b []byte, op uint16, sub byte, words int, flags uint16) []byte {
	b = append(b, fipVersion<<4, 0)
	b = binary.BigEndian.AppendUint16(b, op)
	b = append(b, 0, sub)
	b = binary.BigEndian.AppendUint16(b, uint16(words))
	return binary.BigEndian.AppendUint16(b, flags)
}

func appendMACDesc(b []byte, m MAC) []byte {
	b = append(b, dtMAC, macDescLen/4)
	return append(b, m[:]...)
}

// AppendVN appends a whole Ethernet frame carrying m from src to dst.
// A beacon is sent from the VN_Port MAC, everything else from the ENode
// MAC (as Linux does).
func AppendVN(b []byte, dst, src MAC, m *VNMsg) []byte {
	words := (macDescLen + nameDescLen + vnDescLen) / 4
	if isClaim(m.Sub) {
		words += (fc4DescLen + sizeDescLen) / 4
	}
	b = appendEth(b, dst, src, EtherTypeFIP)
	b = appendFIPHeader(b, opVN2VN, m.Sub, words, m.Flags)
	b = appendMACDesc(b, m.ENode)
	b = append(b, dtName, nameDescLen/4, 0, 0)
	b = append(b, m.NodeName[:]...)
	b = append(b, dtVNID, vnDescLen/4)
	b = append(b, m.VNMAC[:]...)
	b = append(b, 0, byte(m.PortID>>16), byte(m.PortID>>8), byte(m.PortID))
	b = append(b, m.PortName[:]...)
	if isClaim(m.Sub) {
		d := make([]byte, fc4DescLen)
		d[0], d[1] = dtFC4F, fc4DescLen/4
		// The FC-4 type map has FCP's bit; the feature map its roles.
		binary.BigEndian.PutUint32(d[4+4*(fc.TypeFCP/32):], 1<<(fc.TypeFCP%32))
		var feat uint32
		if m.Target {
			feat |= fc4FeatTarget
		}
		if m.Initiator {
			feat |= fc4FeatInitiator
		}
		binary.BigEndian.PutUint32(d[4+32+4*(fc.TypeFCP*4/32):], feat<<(fc.TypeFCP*4%32))
		b = append(b, d...)
		b = append(b, dtFCoESize, sizeDescLen/4)
		b = binary.BigEndian.AppendUint16(b, m.FCoESize)
	}
	return b
}

// LSMsg is a FIP-encapsulated ELS (FC-BB-6 7.8.6): Linux sends the p2p
// FLOGI and the LOGO between VN2VN ports this way instead of as FCoE.
type LSMsg struct {
	Reply bool
	DType byte   // dtFLOGI, dtLOGO, …: which ELS
	Frame []byte // the FC frame: header and payload, no SOF/EOF/CRC
	MAC   MAC    // the MAC descriptor, zero when absent
}

// ParseLS parses a FIP LS frame (after the Ethernet header): the
// encapsulated ELS descriptor first, then an optional MAC descriptor.
func ParseLS(b []byte) (LSMsg, error) {
	var m LSMsg
	h, err := parseFIPHeader(b)
	if err != nil {
		return m, err
	}
	if h.op != opLS || (h.sub != scLSReq && h.sub != scLSRep) {
		return m, fmt.Errorf("%w: op %#x subcode %d is not an encapsulated ELS", errFIP, h.op, h.sub)
	}
	m.Reply = h.sub == scLSRep
	first := true
	var seen uint32
	for d := h.descs; len(d) > 0; first = false {
		typ, desc, rest, err := nextDesc(d)
		if err != nil {
			return m, err
		}
		d = rest
		if typ < 32 {
			if seen&(1<<typ) != 0 {
				return m, fmt.Errorf("%w: repeated descriptor %d", errFIP, typ)
			}
			seen |= 1 << typ
		}
		switch typ {
		case dtFLOGI, dtFDISC, dtLOGO, dtELP:
			if !first {
				return m, fmt.Errorf("%w: ELS descriptor not first", errFIP)
			}
			if len(desc) < 4+fc.HeaderLen+1 {
				return m, fmt.Errorf("%w: ELS descriptor of %d bytes", errFIP, len(desc))
			}
			m.DType, m.Frame = typ, desc[4:]
		case dtMAC:
			if first || len(desc) != macDescLen {
				return m, fmt.Errorf("%w: misplaced or bad MAC descriptor", errFIP)
			}
			copy(m.MAC[:], desc[2:8])
		default:
			if typ < dtVendorMin {
				return m, fmt.Errorf("%w: unexpected descriptor %d in an ELS", errFIP, typ)
			}
		}
	}
	if m.Frame == nil {
		return m, fmt.Errorf("%w: no encapsulated ELS", errFIP)
	}
	return m, nil
}

// AppendLS appends a whole Ethernet frame with a FIP-encapsulated ELS
// frame f (header and payload); mac, when not zero, follows as the MAC
// descriptor (an LS_RJT carries none).
func AppendLS(b []byte, dst, src MAC, reply bool, dtype byte, f *fc.Frame, mac MAC) ([]byte, error) {
	n := fc.HeaderLen + len(f.Payload)
	if n%4 != 0 {
		return b, fmt.Errorf("fcoe: encapsulated ELS of %d bytes is not whole words", n)
	}
	words := (4 + n) / 4
	if words > 255 {
		return b, fmt.Errorf("fcoe: encapsulated ELS of %d bytes does not fit a descriptor", n)
	}
	total := words
	if mac != (MAC{}) {
		total += macDescLen / 4
	}
	sub := byte(scLSReq)
	if reply {
		sub = scLSRep
	}
	b = appendEth(b, dst, src, EtherTypeFIP)
	b = appendFIPHeader(b, opLS, sub, total, 0)
	b = append(b, dtype, byte(words), 0, 0)
	b = f.AppendTo(b)
	if mac != (MAC{}) {
		b = appendMACDesc(b, mac)
	}
	return b, nil
}
