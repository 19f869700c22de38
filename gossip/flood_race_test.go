//go:build race

package gossip

// Under the race detector every step is many times slower: a smaller flood
// against smaller caps, still many times past both.
const (
	floodMessages   = 60_000
	floodCacheMax   = 1_000 // the seen set holds ten times as many
	floodCheckEvery = 2_000
	floodHeapEvery  = 10_000
)
