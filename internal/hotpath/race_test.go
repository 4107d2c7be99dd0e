//go:build race

package hotpath

const raceDetector = true
