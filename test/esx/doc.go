// Package esx holds integration tests for what VMware ESXi depends on and
// libiscsi's conformance suite does not cover: ALUA state changes seen by
// live sessions, persistent reservations (APTPL) across a real daemon
// crash, ATS atomicity under concurrent sessions and writers, and ABORT
// TASK of a long EXTENDED COPY.
//
// The tests build stmfd, stmfadm and itadm (with -race when the tests run
// with it), start stmfd on random loopback ports with a temporary state
// directory, configure it with the CLIs and drive it with the small iSCSI
// initiator in internal/initiator. Every test is bounded in time. They are
// skipped with -short, or when the go tool is missing unless
// COSTAR_REQUIRE_TOOLS=1, which turns the skip into a failure.
package esx
