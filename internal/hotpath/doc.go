// Package hotpath holds the end-to-end benchmarks of one SCSI command's
// path through the target: an iSCSI PDU on a loopback TCP connection,
// portprovider/iscsi, stmf, the lu device server and a memory backing
// store, and back. Its one exported function, StartTarget, serves the
// same in-process target to costar-loadgen's tests. Run
//
//	go test -run '^$' -bench . -benchmem ./internal/hotpath
//
// The client is written into the benchmark with fixed buffers, so the
// allocations per op it reports are the target's.
package hotpath
