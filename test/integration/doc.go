// Package integration holds end-to-end tests that build and start the real
// stmfd daemon on a random loopback port (--demo, temporary state directory)
// and drive it with real initiators: libiscsi's iscsi-ls, iscsi-inq and
// iscsi-readcapacity16, QEMU's qemu-io and qemu-img (iscsi:// URLs), and a
// small raw iSCSI initiator written for these tests; a real Prometheus server
// (Debian's prometheus) scrapes --metrics-listen in metrics_test.go.
//
// A test whose tools are missing is skipped, unless COSTAR_REQUIRE_TOOLS=1
// (set by `make test`), which turns the skip into a failure. Install the tools
// with scripts/install-test-deps.sh. COSTAR_STMFD_BIN=/path/to/stmfd tests a
// prebuilt binary instead of building ./cmd/stmfd (built with -race when the
// tests run with -race, so a data race in the daemon fails the test).
package integration
