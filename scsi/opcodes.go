package scsi

// Operation codes (SPC-4, SBC-4), used by the framework, the LU provider
// and tests alike.
const (
	OpTestUnitReady     = 0x00
	OpRequestSense      = 0x03
	OpRead6             = 0x08
	OpWrite6            = 0x0a
	OpInquiry           = 0x12
	OpModeSelect6       = 0x15
	OpReserve6          = 0x16
	OpRelease6          = 0x17
	OpModeSense6        = 0x1a
	OpStartStopUnit     = 0x1b
	OpReceiveDiagnostic = 0x1c
	OpSendDiagnostic    = 0x1d
	OpPreventAllow      = 0x1e
	OpReadCapacity10    = 0x25
	OpRead10            = 0x28
	OpWrite10           = 0x2a
	OpWriteVerify10     = 0x2e
	OpVerify10          = 0x2f
	OpPrefetch10        = 0x34
	OpSyncCache10       = 0x35
	OpReadDefectData10  = 0x37
	OpWriteSame10       = 0x41
	OpUnmap             = 0x42
	OpLogSelect         = 0x4c
	OpLogSense          = 0x4d
	OpModeSelect10      = 0x55
	OpReserve10         = 0x56
	OpRelease10         = 0x57
	OpModeSense10       = 0x5a
	OpPRIn              = 0x5e
	OpPROut             = 0x5f
	OpExtendedCopy      = 0x83
	OpReceiveCopyRes    = 0x84
	OpRead16            = 0x88
	OpCompareAndWrite   = 0x89
	OpWrite16           = 0x8a
	OpOrWrite16         = 0x8b
	OpWriteVerify16     = 0x8e
	OpVerify16          = 0x8f
	OpPrefetch16        = 0x90
	OpSyncCache16       = 0x91
	OpWriteSame16       = 0x93
	OpWriteAtomic16     = 0x9c
	OpServiceActionIn   = 0x9e
	OpReportLUNs        = 0xa0
	OpMaintenanceIn     = 0xa3
	OpMaintenanceOut    = 0xa4
	OpRead12            = 0xa8
	OpWrite12           = 0xaa
	OpWriteVerify12     = 0xae
	OpVerify12          = 0xaf
	OpReadDefectData12  = 0xb7
)

// Service actions, by the opcode that carries them.
const (
	// SERVICE ACTION IN (16).
	SAReadCapacity16 = 0x10
	SAGetLBAStatus   = 0x12

	// MAINTENANCE IN.
	SAReportTargetPortGroups = 0x0a
	SAReportSupportedOps     = 0x0c
	SAReportSupportedTMFs    = 0x0d

	// MAINTENANCE OUT.
	SASetTargetPortGroups = 0x0a

	// EXTENDED COPY and RECEIVE COPY RESULTS.
	SAExtendedCopyLID1 = 0x00
	SACopyStatus       = 0x00
	SAOperatingParams  = 0x03

	// PERSISTENT RESERVE IN.
	PRInReadKeys        = 0x00
	PRInReadReservation = 0x01
	PRInReportCaps      = 0x02
	PRInReadFullStatus  = 0x03

	// PERSISTENT RESERVE OUT.
	PROutRegister       = 0x00
	PROutReserve        = 0x01
	PROutRelease        = 0x02
	PROutClear          = 0x03
	PROutPreempt        = 0x04
	PROutPreemptAbort   = 0x05
	PROutRegisterIgnore = 0x06
	PROutRegisterMove   = 0x07
)
