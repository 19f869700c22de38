// Package partition is the partition rule the fault injectors share
// (transport/mem's Network.Partition and transport/chaos's): addresses in
// different groups cannot reach each other; an address in no group reaches
// everyone.
//
// This package must never import anything outside the standard library.
package partition

// Groups maps an address to its group. The nil Groups is no partition.
type Groups map[string]int

// New splits addresses into groups. An address listed in several groups
// belongs to the last one.
func New(groups ...[]string) Groups {
	g := make(Groups)
	for i, group := range groups {
		for _, addr := range group {
			g[addr] = i
		}
	}
	return g
}

// Reachable reports whether from may reach to: both are in the same group,
// or one of them is in none.
func (g Groups) Reachable(from, to string) bool {
	gf, okf := g[from]
	gt, okt := g[to]
	return !okf || !okt || gf == gt
}
