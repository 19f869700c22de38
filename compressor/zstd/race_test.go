//go:build race

package zstd_test

// raceEnabled is true under the race detector, which slows the conformance
// suite to seconds per level.
const raceEnabled = true
