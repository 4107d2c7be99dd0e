package stmf

// Decoded is room in every task for what an LU provider decodes from its
// CDB at Admit (which command, which blocks), so that the LU parses a CDB
// once and allocates nothing for it. stmf never reads or writes it.
type Decoded struct {
	Cmd    uint16 // the LU's own reference to its command descriptor; 0: not decoded
	Flags  uint16 // the LU's own flags
	Blocks uint32 // transfer length, in blocks
	LBA    uint64 // first logical block
}
