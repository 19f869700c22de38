// Package conformance holds the suites every adapter of this library must
// pass: transports, codecs, compressors and memberships, ours and yours.
//
// An adapter's test calls its suite in a few lines:
//
//	func TestConformance(t *testing.T) {
//		conformance.TestTransport(t, newNetwork)
//		conformance.TestBroadcast(t, newNetwork)
//	}
//
//	func newNetwork(t testing.TB) conformance.ListenFunc {
//		return func(addr string) (transport.Transport, error) {
//			if addr == "" {
//				addr = "127.0.0.1:0"
//			}
//			return mytransport.Listen(addr)
//		}
//	}
//
// The suites follow testing/fstest.TestFS, golang.org/x/net/nettest.TestConn
// and testing/slogtest:
//
//   - Each rule is a subtest with a name and one sentence stating the
//     contract; a failing subtest prints its rule. TransportSubtests,
//     CodecSubtests, CompressorSubtests, MembershipSubtests and
//     BroadcastSubtests list them.
//   - Every subtest gets fresh instances from the constructor it was given,
//     and closes them.
//   - A watchdog (Watchdog, default 60s) breaks hangs: when it fires, the
//     subtest fails, naming what it waited for, and everything it opened is
//     closed. No rule depends on how fast an adapter is.
//   - Random payloads come from a seed that is logged; Seed or the
//     PLUMTREE_CONFORMANCE_SEED environment variable repeat a run.
//   - Optional capabilities are found by type assertion (the datagram and
//     stream paths, statistics): one the adapter lacks is skipped with the
//     reason, one it claims is checked. Skip skips any other rule, with a
//     reason the output shows.
//   - TestBroadcast runs small clusters of this library's own nodes over the
//     transport: what proves that an adapter works with the protocol, not
//     only with the suite.
//
// The Check functions run the same rules outside `go test` and return the
// rules broken.
//
// Some rules look at the whole process (goroutines left after Close, memory
// allocated while decompressing a bomb), so run the suites without
// t.Parallel.
package conformance
