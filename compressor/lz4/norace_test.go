//go:build !race

package lz4_test

const raceEnabled = false
