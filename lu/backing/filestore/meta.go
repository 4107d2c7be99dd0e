package filestore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/costar-project/costar/lu/backing"
)

// On-disk LU metadata.
//
// The metadata region is 64 KiB: at the start of the data file (the LU's
// data then begins at byte 65536), or the whole of a separate meta file
// (data then begins at byte 0 of the data file). It holds two 32 KiB
// slots, at 0 and 32 KiB. Each slot is
//
//	0   magic "COSTARLU"
//	8   format version (u16)
//	10  header length (u16), 32 in version 1; the payload starts there
//	12  payload length (u32)
//	16  generation (u64)
//	24  CRC-32C (Castagnoli) of bytes 0..23, 28..header length, and the payload
//	28  reserved (u32)
//	32  payload: a sequence of TLVs (tag u16, length u32, value)
//
// All integers are big-endian. An update writes the slot that does not
// hold the newest copy, with generation+1, then fdatasyncs; a reader takes
// the valid slot with the highest generation, so a torn update leaves the
// previous copy in force. Unknown TLV tags are kept and written back, so
// older and newer versions can share a file.
const (
	metaRegionSize = 64 << 10
	metaSlotSize   = 32 << 10
	metaHeaderLen  = 32
	metaVersion    = 1
	metaMagic      = "COSTARLU"

	// headerDataOffset is where LU data starts when the metadata lives in
	// the data file: 64 KiB keeps 4 KiB and 64 KiB alignment.
	headerDataOffset = metaRegionSize
)

// TLV tags of the metadata payload.
const (
	tagGUID       = 1
	tagSize       = 2
	tagBlockSize  = 3
	tagFlags      = 4
	tagVendorID   = 5
	tagProductID  = 6
	tagSerial     = 7
	tagAlias      = 8
	tagMgmtURL    = 9
	tagDataFile   = 10
	tagDataOffset = 11
	tagPR         = 12 // persistent reservation state (opaque here)
	// 20..29: thin provisioning (thin.go); written only when set.
	tagThin          = 20 // 1 byte: 1 = thin provisioned
	tagSoftThreshold = 21 // 1 byte: soft threshold percent
	// 30: cluster mode (fence.go); written only when set, so a file that
	// was never fenced reads the same in older versions, which keep the
	// tag as an unknown one and write it back unchanged.
	tagFenceToken = 30 // u64: fencing token of the newest owner
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// metadata is what a slot holds: the LU's metadata and where its data
// starts in the data file (0 or headerDataOffset).
type metadata struct {
	backing.Meta
	DataOffset uint64
}

func appendTLV(b []byte, tag uint16, val []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, tag)
	b = binary.BigEndian.AppendUint32(b, uint32(len(val)))
	return append(b, val...)
}

func u64b(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func u32b(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// encodeSlot returns one slot image (header and payload) for generation gen.
func (m *metadata) encodeSlot(gen uint64) ([]byte, error) {
	b := make([]byte, metaHeaderLen, 1024)
	b = appendTLV(b, tagGUID, m.GUID[:])
	b = appendTLV(b, tagSize, u64b(m.Size))
	b = appendTLV(b, tagBlockSize, u32b(m.BlockSize))
	b = appendTLV(b, tagFlags, u32b(m.Flags))
	b = appendTLV(b, tagDataOffset, u64b(m.DataOffset))
	b = appendTLV(b, tagVendorID, []byte(m.VendorID))
	b = appendTLV(b, tagProductID, []byte(m.ProductID))
	b = appendTLV(b, tagSerial, []byte(m.Serial))
	b = appendTLV(b, tagAlias, []byte(m.Alias))
	b = appendTLV(b, tagMgmtURL, []byte(m.MgmtURL))
	b = appendTLV(b, tagDataFile, []byte(m.DataFile))
	b = appendTLV(b, tagPR, m.PR)
	if m.Thin {
		b = appendTLV(b, tagThin, []byte{1})
	}
	if m.SoftThreshold != 0 {
		b = appendTLV(b, tagSoftThreshold, []byte{m.SoftThreshold})
	}
	if m.FenceToken != 0 {
		b = appendTLV(b, tagFenceToken, u64b(uint64(m.FenceToken)))
	}
	for _, u := range m.Unknown {
		b = appendTLV(b, u.Tag, u.Val)
	}
	if len(b) > metaSlotSize {
		return nil, fmt.Errorf("lu: metadata too large (%d bytes, slot holds %d)", len(b), metaSlotSize)
	}
	copy(b[0:8], metaMagic)
	binary.BigEndian.PutUint16(b[8:10], metaVersion)
	binary.BigEndian.PutUint16(b[10:12], metaHeaderLen)
	binary.BigEndian.PutUint32(b[12:16], uint32(len(b)-metaHeaderLen))
	binary.BigEndian.PutUint64(b[16:24], gen)
	binary.BigEndian.PutUint32(b[24:28], slotCRC(b))
	return b, nil
}

// slotCRC is the checksum of a slot image (exactly header plus payload):
// everything but the CRC field itself.
func slotCRC(img []byte) uint32 {
	c := crc32.Update(0, castagnoli, img[0:24])
	return crc32.Update(c, castagnoli, img[28:])
}

// slotState tells why a slot was rejected, for error messages.
type slotState int

const (
	slotEmpty   slotState = iota // no magic: never written
	slotValid                    // decoded
	slotCorrupt                  // magic present but bad length, CRC or content
	slotNewer                    // written by a newer, incompatible format
)

// decodeSlot parses one 32 KiB slot image.
func decodeSlot(s []byte) (*metadata, uint64, slotState, error) {
	if len(s) < metaHeaderLen || string(s[0:8]) != metaMagic {
		return nil, 0, slotEmpty, nil
	}
	ver := binary.BigEndian.Uint16(s[8:10])
	hdrLen := int(binary.BigEndian.Uint16(s[10:12]))
	plen := int(binary.BigEndian.Uint32(s[12:16]))
	if ver == 0 {
		return nil, 0, slotCorrupt, fmt.Errorf("format version 0")
	}
	if ver > metaVersion {
		return nil, 0, slotNewer, fmt.Errorf("format version %d is newer than this program supports (%d)", ver, metaVersion)
	}
	if hdrLen < metaHeaderLen || hdrLen > len(s) || plen > len(s)-hdrLen {
		return nil, 0, slotCorrupt, fmt.Errorf("bad lengths (header %d, payload %d)", hdrLen, plen)
	}
	img := s[:hdrLen+plen]
	if got, want := slotCRC(img), binary.BigEndian.Uint32(s[24:28]); got != want {
		return nil, 0, slotCorrupt, fmt.Errorf("checksum mismatch")
	}
	gen := binary.BigEndian.Uint64(s[16:24])
	m, err := decodePayload(img[hdrLen:])
	if err != nil {
		return nil, 0, slotCorrupt, err
	}
	return m, gen, slotValid, nil
}

func decodePayload(p []byte) (*metadata, error) {
	m := &metadata{}
	seen := map[uint16]bool{}
	for len(p) > 0 {
		if len(p) < 6 {
			return nil, fmt.Errorf("truncated TLV header")
		}
		tag := binary.BigEndian.Uint16(p[0:2])
		n := binary.BigEndian.Uint32(p[2:6])
		if uint64(n) > uint64(len(p)-6) {
			return nil, fmt.Errorf("TLV %d overruns payload", tag)
		}
		v := p[6 : 6+n]
		p = p[6+n:]
		seen[tag] = true
		fixed := func(want int) error {
			if len(v) != want {
				return fmt.Errorf("TLV %d has length %d, want %d", tag, len(v), want)
			}
			return nil
		}
		var err error
		switch tag {
		case tagGUID:
			if err = fixed(16); err == nil {
				copy(m.GUID[:], v)
			}
		case tagSize:
			if err = fixed(8); err == nil {
				m.Size = binary.BigEndian.Uint64(v)
			}
		case tagBlockSize:
			if err = fixed(4); err == nil {
				m.BlockSize = binary.BigEndian.Uint32(v)
			}
		case tagFlags:
			if err = fixed(4); err == nil {
				m.Flags = binary.BigEndian.Uint32(v)
			}
		case tagDataOffset:
			if err = fixed(8); err == nil {
				m.DataOffset = binary.BigEndian.Uint64(v)
			}
		case tagVendorID:
			m.VendorID = string(v)
		case tagProductID:
			m.ProductID = string(v)
		case tagSerial:
			m.Serial = string(v)
		case tagAlias:
			m.Alias = string(v)
		case tagMgmtURL:
			m.MgmtURL = string(v)
		case tagDataFile:
			m.DataFile = string(v)
		case tagPR:
			m.PR = append([]byte(nil), v...)
		case tagThin:
			if err = fixed(1); err == nil {
				m.Thin = v[0] != 0
			}
		case tagSoftThreshold:
			if err = fixed(1); err == nil {
				m.SoftThreshold = v[0]
			}
		case tagFenceToken:
			if err = fixed(8); err == nil {
				m.FenceToken = int64(binary.BigEndian.Uint64(v))
				if m.FenceToken < 0 {
					err = fmt.Errorf("fencing token %d out of range", uint64(m.FenceToken))
				}
			}
		default:
			m.Unknown = append(m.Unknown, backing.Field{Tag: tag, Val: append([]byte(nil), v...)})
		}
		if err != nil {
			return nil, err
		}
	}
	for _, req := range []uint16{tagGUID, tagSize, tagBlockSize} {
		if !seen[req] {
			return nil, fmt.Errorf("required TLV %d missing", req)
		}
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	if m.DataOffset != 0 && m.DataOffset != headerDataOffset {
		return nil, fmt.Errorf("invalid data offset %d", m.DataOffset)
	}
	return m, nil
}
