//go:build !race

package esx

const raceEnabled = false
