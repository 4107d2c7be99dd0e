// Package fc is the Fibre Channel port provider: an FCP-4 SCSI target and
// the FC link services a target needs, over an HBA adapter interface that
// is the only thing a hardware (or software) driver implements.
//
// # The split
//
// As illumos COMSTAR splits fct (framework) from qlt (QLogic driver), and
// SPDK's FC transport splits the NVMe-oF FC layer from its low-level
// driver, this package owns everything above the frame:
//
//   - the remote port database, keyed by N_Port ID and WWPN (PLOGI, LOGO,
//     implicit logout on a new PLOGI or a link change);
//   - FCP process login (PRLI/PRLO: target function only), which opens
//     and closes the stmf session of a remote port, named wwn.<WWPN> with
//     the FC TransportID of its port name;
//   - ADISC, RSCN (acknowledged; a target does not rediscover), the
//     point-to-point FLOGI (answered; with the greater port name the
//     target then sends PLOGI, as FC-LS has it), LS_RJT for the rest;
//   - exchanges: FCP_CMND → stmf task, FCP_XFER_RDY bursts and FCP_DATA
//     frames sized by what the logins negotiated (login.go), FCP_DATA by
//     relative offset, FCP_RSP with status, sense and FCP-4 residuals;
//     task management flags; ABTS → ABORT TASK and BA_ACC, BA_RJT for an
//     exchange we do not have; late frames of a finished or aborted
//     exchange are told apart by our RX_ID and dropped.
//
// The driver (an [Adapter]) moves frames and reports link events. It
// brings the link up, including whatever fabric login or address
// acquisition the medium needs (FLOGI on a fabric, FIP VN2VN claims for
// FCoE, loop initialization), and reports the result as a [LinkEvent]
// with our N_Port ID. It never answers an ELS or an FCP IU itself.
//
// # What a driver implements
//
//   - Info: port and node WWN, driver name, largest frame payload (at
//     least 256, at most 2112 bytes). Constant while running.
//   - Start(ctx, h): start receiving; deliver every frame addressed to
//     this N_Port to h.Receive and every link change to h.LinkEvent.
//   - Send(f): transmit one frame (header as given; the driver adds
//     SOF/EOF, CRC and any encapsulation). Called from many goroutines.
//   - Stop(ctx): take the link down; no handler call after it returns.
//
// # Threading
//
// The driver calls Handler methods from one goroutine at a time, in the
// order frames arrived (an interrupt thread or a receive-ring poller).
// Handler methods do not block on I/O: replies go out through Send on the
// caller's goroutine, SCSI work runs on stmf's workers, and closing a
// logged-out port's session happens in the background. Send is called
// concurrently — from the receive goroutine, stmf workers and management
// calls — and must not block on the remote port: queue the frame (or
// drop it and return an error when the queue is full); FC recovers lost
// frames with ABTS and command timeouts.
//
// # Buffer ownership
//
// A frame passed to Receive is borrowed for the call: this package copies
// everything it keeps (Data-Out into the exchange's buffer, CDBs into the
// task), so the driver may recycle its receive buffer as soon as Receive
// returns. A frame passed to Send is borrowed for the call too: the driver
// copies or transmits its header and payload before returning, because
// read data is sliced from the LU's buffers, which are released once the
// exchange's FCP_RSP has been sent.
//
// # Limits
//
// [Config] bounds what a remote port can make the target hold: the
// largest write (its buffer is allocated whole when the LU asks for the
// data), the FCP_XFER_RDY burst, open exchanges per remote port (TASK SET
// FULL beyond) and logged-in remote ports. Every parser is bounds-checked
// and fuzzed (FuzzParse, FuzzPortFrames).
//
// The loopback sub-package is the worked example of an adapter: an
// in-process "wire" with a tiny FCP initiator, used by the tests. The fcoe
// sub-package is a real one: software FCoE in VN2VN mode over an Ethernet
// interface, which the Linux kernel's FC initiator logs in to.
package fc
