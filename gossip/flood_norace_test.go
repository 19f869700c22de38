//go:build !race

package gossip

// The full unique-message flood, with DefaultConfig's caps.
const (
	floodMessages   = 1_000_000
	floodCacheMax   = 10_000 // DefaultConfig().MessageCacheMaxSize; the seen set holds ten times as many
	floodCheckEvery = 10_000
	floodHeapEvery  = 50_000
)
