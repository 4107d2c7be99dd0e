package lu

import (
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// command describes one command (opcode, and service action where the
// opcode has them): everything dispatch, the range lock, the reservation
// check, the ALUA check, the inline decision and REPORT SUPPORTED
// OPERATION CODES need to know about it. The zero values of lock, resv and
// alua mean "not decided" and are rejected by TestCommandTableComplete.
type command struct {
	op     byte
	sa     int // service action, or -1 when the opcode has none
	cdbLen int
	// usage is the CDB USAGE DATA bitmap: a bit is set when the device
	// server honours the corresponding CDB bit. usage[0] is the opcode.
	usage   []byte
	timeout uint32       // recommended command timeout, seconds
	dir     scsi.DataDir // data phase, for the inline decision
	layout  layout       // where the LBA and transfer length are
	lock    lockKind     // how the range lock orders it
	resv    resvClass    // how reservations restrict it
	// harmless, with resvUnlessHarmless, picks the CDBs that never
	// conflict (START STOP UNIT with START=1, PREVENT ALLOW with PREVENT 0).
	harmless func(cdb []byte) bool
	alua     aluaSet // the access states in which a port may run it
	inline   bool    // may run in the transport's goroutine when short (quick.go)
	// kind is how stmf's counters class it (metrics); zero is other.
	kind stmf.Kind
	// only, when set, keeps the row in an LU's table only when it
	// returns true (thin LUs, LUs whose store has atomic writes).
	only func(d *Device) bool
	// fn handles the command; nil for a command the LU does not implement
	// but whose ALUA answer must differ from an unknown one's.
	fn func(d *Device, t *stmf.Task, cdb []byte) *stmf.Result
}

// lockKind classifies a command for the range lock (rangelock.go).
type lockKind uint8

const (
	lockUnset   lockKind = iota // not decided: invalid in a table row
	lockNone                    // touches no blocks, or locks during execution (EXTENDED COPY)
	lockRead                    // a read: registered only to observe an atomic command whole
	lockWrite                   // a write: ordered against overlapping writes
	lockAtomic                  // read-modify-write or atomic write: also excludes overlapping reads
	lockWholeLU                 // ranges unknown at Admit (UNMAP): a write over the whole LU
)

// layout says where a CDB keeps its LOGICAL BLOCK ADDRESS and transfer
// length (SBC-4 4.2.2 and the commands' own CDBs).
type layout uint8

const (
	layoutNone        layout = iota // no block range
	layout6                         // READ/WRITE (6): 21-bit LBA, 8-bit length, 0 = 256 blocks
	layout10                        // 32-bit LBA at 2, 16-bit length at 7
	layout12                        // 32-bit LBA at 2, 32-bit length at 6
	layout16                        // 64-bit LBA at 2, 32-bit length at 10
	layoutCAW                       // COMPARE AND WRITE: NUMBER OF LOGICAL BLOCKS at 13
	layoutAtomic16                  // WRITE ATOMIC (16): 16-bit length at 12
	layoutWriteSame10               // as layout10; a length of 0 means "to the end of the LU"
	layoutWriteSame16               // as layout16; a length of 0 means "to the end of the LU"
)

// resvClass is how reservations restrict a command: SPC-4 table 63 and
// SBC-3 table 13 for persistent reservations (with ALLOW COMMANDS 011b,
// which we report), SPC-2 table 10 for SCSI-2 reservations.
type resvClass uint8

const (
	resvUnset resvClass = iota // not decided: invalid in a table row
	// resvAlways never conflicts, not even with another I_T nexus's
	// SCSI-2 reservation (INQUIRY, REQUEST SENSE, READ CAPACITY, RELEASE).
	resvAlways
	// resvPROnly never conflicts with a persistent reservation; a SCSI-2
	// reservation admits only its holder (TEST UNIT READY, RESERVE).
	resvPROnly
	// resvPRCommand is PERSISTENT RESERVE IN/OUT: their own processing
	// decides, but any SCSI-2 reservation makes them conflict (SPC-2).
	resvPRCommand
	// resvRead passes the Write Exclusive types and conflicts with the
	// Exclusive Access types.
	resvRead
	// resvWrite conflicts for every I_T nexus that is not the holder (or,
	// for registrants-only and all-registrants types, not registered).
	resvWrite
	// resvUnlessHarmless is resvWrite, or resvAlways when harmless(cdb).
	resvUnlessHarmless
)

// classify returns the command's persistent reservation class and whether
// it is allowed from an I_T nexus other than the holder of a SCSI-2
// reservation. cdb has at least the command's length.
func (c *command) classify(cdb []byte) (cls cmdClass, scsi2OK bool) {
	switch c.resv {
	case resvAlways:
		return clsAllowed, true
	case resvPROnly, resvPRCommand:
		return clsAllowed, false
	case resvRead:
		return clsRead, false
	case resvUnlessHarmless:
		if c.harmless(cdb) {
			return clsAllowed, true
		}
	}
	return clsOther, false
}

// aluaSet is a set of asymmetric access states (SPC-4 5.15.2).
type aluaSet uint8

const (
	aluaActive        aluaSet = 1 << iota // active/optimized and active/non-optimized
	aluaStandby                           // standby
	aluaUnavailable                       // unavailable
	aluaTransitioning                     // transitioning between states

	// Which commands a port serves in each state (SPC-4 5.15.2.4-6).
	onlyActive = aluaActive
	inStandby  = aluaActive | aluaStandby
	inAnyState = aluaActive | aluaStandby | aluaUnavailable | aluaTransitioning
)

// aluaRefusal returns the sense for a command (nil: unknown) that a port
// in state st may not run, or nil when it may.
func aluaRefusal(st stmf.ALUAState, c *command) *scsi.Sense {
	var bit aluaSet
	var asc scsi.ASC
	switch st {
	case stmf.ALUAStandby:
		bit, asc = aluaStandby, scsi.ASCLUNotAccessibleStandby
	case stmf.ALUAUnavailable:
		bit, asc = aluaUnavailable, scsi.ASCLUNotAccessibleUnavailable
	case stmf.ALUATransitioning:
		bit, asc = aluaTransitioning, scsi.ASCLUNotAccessibleTransitioning
	default:
		return nil // active: everything
	}
	if c != nil && c.alua&bit != 0 {
		return nil
	}
	return scsi.NewSense(scsi.KeyNotReady, asc)
}
