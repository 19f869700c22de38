// Package layering holds, in its test, the import rules of this module:
// the core (gossip) imports no adapter, the ports (transport, codec,
// compressor, membership) import nothing of the module, an adapter imports
// no other adapter except the bundles and decorators that exist for it,
// and nothing in the library imports the tools (cmd, sim, internal/bench,
// examples, bench, e2e). docs/ARCHITECTURE.md draws them.
//
// The package has no code: `go test ./...` runs its test, so CI holds the
// rules. A new package must be given its layer in the test's table.
package layering
