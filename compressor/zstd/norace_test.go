//go:build !race

package zstd_test

const raceEnabled = false
