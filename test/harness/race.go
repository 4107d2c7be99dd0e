//go:build race

package harness

// raceEnabled: the tests run with -race, so the binaries are built with it too.
const raceEnabled = true
