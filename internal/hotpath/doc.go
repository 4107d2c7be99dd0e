// Package hotpath holds the end-to-end benchmarks of one SCSI command's
// path through the target: an iSCSI PDU on a loopback TCP connection,
// portprovider/iscsi, stmf, the lu device server and a memory backing
// store, and back. It has no code of its own; run
//
//	go test -run '^$' -bench . -benchmem ./internal/hotpath
//
// The client is written into the benchmark with fixed buffers, so the
// allocations per op it reports are the target's.
package hotpath
