// Package harness is the shared helper of the integration suites under
// test/ (integration, mgmt, esx): it builds stmfd, stmfadm (also as
// sbdadm) and itadm once per test binary (with -race when the tests run
// with it, so a data race in the daemon shows in its log), starts stmfd on
// a random loopback port with a temporary state directory, drives it with
// the CLIs, and fails a test whose daemon logged a data race or a panic.
//
// It is imported only by tests. A test whose tools are missing is skipped,
// unless COSTAR_REQUIRE_TOOLS=1 (set by `make test`), which turns the skip
// into a failure. COSTAR_STMFD_BIN=/path/to/stmfd tests a prebuilt daemon
// instead of building ./cmd/stmfd.
package harness
