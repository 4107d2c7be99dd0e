// Package scsi holds the vocabulary shared by every layer of costar: status
// codes, sense data, task attributes and the 8-byte LUN format. It has no
// dependencies on the wire or the disk, so port providers, stmf and the LU
// provider can all import it.
package scsi

import "fmt"

// Status is a SCSI status byte (SAM-5 5.3).
type Status byte

const (
	StatusGood                Status = 0x00
	StatusCheckCondition      Status = 0x02
	StatusConditionMet        Status = 0x04
	StatusBusy                Status = 0x08
	StatusReservationConflict Status = 0x18
	StatusTaskSetFull         Status = 0x28
	StatusACAActive           Status = 0x30
	StatusTaskAborted         Status = 0x40
)

func (s Status) String() string {
	switch s {
	case StatusGood:
		return "GOOD"
	case StatusCheckCondition:
		return "CHECK CONDITION"
	case StatusConditionMet:
		return "CONDITION MET"
	case StatusBusy:
		return "BUSY"
	case StatusReservationConflict:
		return "RESERVATION CONFLICT"
	case StatusTaskSetFull:
		return "TASK SET FULL"
	case StatusACAActive:
		return "ACA ACTIVE"
	case StatusTaskAborted:
		return "TASK ABORTED"
	}
	return fmt.Sprintf("status 0x%02x", byte(s))
}

// TaskAttr is the SAM task attribute of a command.
type TaskAttr uint8

const (
	TaskSimple TaskAttr = iota
	TaskOrdered
	TaskHeadOfQueue
	TaskACA
)

// DataDir is the direction of a command's data phase, seen from the initiator.
type DataDir uint8

const (
	DirNone  DataDir = 0
	DirRead  DataDir = 1 // Data-In: target to initiator
	DirWrite DataDir = 2 // Data-Out: initiator to target
	DirBidi  DataDir = 3
)
