//go:build race

package gossip

// hotPathRace: allocation counts mean nothing under the race detector.
const hotPathRace = true
