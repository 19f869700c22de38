// Package conformance holds the suites every adapter of this library must
// pass: transports, codecs, compressors and memberships, ours and yours.
//
// An adapter's test calls its suite in a few lines:
//
//	func TestConformance(t *testing.T) {
//		conformance.TestTransport(t, newNetwork)
//		conformance.TestBroadcast(t, newNetwork, static.New[string])
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
// TestBroadcast takes each node's membership from the caller
// (static.New[string] of package membership/static above), so that this
// package imports no adapter.
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
//     only with the suite. It covers topics (package topic) too.
//
// The Check functions run the same rules outside `go test` and return the
// rules broken. A panic in any call the suite makes on an adapter is
// recovered and reported as the failure of the rule that made the call.
//
// # Writing a transport that passes
//
// The rules check the contract across calls, sizes, counts and time, not one
// case each. What that implies for a design:
//
//   - The stream path wants a bounded queue per peer, filled by SendFrame
//     with a copy of the caller's slice, and a writer goroutine per
//     connection that drains it: frames to one address stay in order, a
//     full queue blocks SendFrame until its context ends, a frame is written
//     whole or not at all, and one slow peer does not hold up the others.
//     "stream/past-the-queue" sends twice what the queue held before
//     SendFrame blocked, plus 2,000, so a loss that shows only once a ring
//     wraps is found whatever the queue's size.
//   - From, on a stream path, is learnt in a handshake: the dialer sends its
//     LocalAddr first on a new connection and the acceptor stamps it on
//     every frame of that connection (the ephemeral port of an outgoing
//     connection is not an address).
//   - The Data of a received message belongs to the reader: allocate per
//     message; receive buffers that come back around fail
//     "*/buffers-across-calls".
//   - Message.Identity is filled only by a transport that implements
//     transport.Authenticator and verifies its peers; any other leaves it
//     empty ("identity"). The gossip core reads it only from such a
//     transport.
//   - Stats are exact: count a message before the reader can see it, count
//     payload bytes without the adapter's framing, count every datagram lost
//     ("stats/exact", "stats/dropped").
//   - Run go.uber.org/goleak in the adapter's own package (in TestMain):
//     "close/no-goroutines" and "close/pending-traffic" look for goroutines
//     left after Close while the suite runs, but one that outlives its test
//     a little, or one the suite's paths did not start, shows only there.
//   - The "*/after-idle" rules leave a link idle for IdleFor (DefaultIdle
//     unless set) and send again: give an adapter that closes idle
//     connections a short timeout in its test, and IdleFor a longer one. An
//     adapter with no real sockets can pass InBubble: each rule then runs in
//     a testing/synctest bubble, on virtual time, and IdleFor(time.Hour)
//     costs nothing.
//
// Rules a capability makes moot (a path the adapter lacks, statistics) are
// skipped with the reason: `go test -v` shows them as SKIP lines with it, and
// the Check functions leave them out of what they return.
//
// Some rules look at the whole process (goroutines left after Close, memory
// allocated while decompressing a bomb), so run the suites without
// t.Parallel.
package conformance
