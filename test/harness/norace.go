//go:build !race

package harness

// raceEnabled: the tests run without -race.
const raceEnabled = false
