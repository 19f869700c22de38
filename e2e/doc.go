// Package e2e is the multi-process end-to-end fault suite: it builds the
// plumtree command, runs ten `plumtree node` processes, each in a Linux
// network namespace of its own, and breaks the cluster the way real
// networks break: nodes killed with SIGKILL while broadcasts go on, one half
// of the cluster cut from the other for longer than failure detection and
// then healed, killed nodes restarted under their old names and addresses.
// It runs over UDP+TCP and over QUIC and checks the principle the library
// is built on: nothing that a correct node broadcast may be lost among the
// nodes that stay correct.
//
// The tests carry the build tag e2e and need root (to make namespaces):
//
//	sudo go test -tags e2e -count=1 -v ./e2e/
//
// or .ci/e2e, which installs iproute2 first if it is missing. Without root,
// without ip, or where namespaces cannot be made (a container without
// CAP_SYS_ADMIN) the tests skip and say why. With E2E_REPORT=FILE they also
// write their figures to FILE as a Markdown table.
//
// # The network
//
// Nothing the tests make touches the host's network. A "switch" namespace
// holds two bridges, side A and side B, joined by a veth pair; each node's
// namespace has one veth to its side's bridge and an address in
// 10.213.0.0/24, with no route anywhere else, and the nodes bind only to
// that address. Cutting one side's links is setting the veth between the
// bridges down: each side stays connected inside. Namespace names start
// with pte2e-PID-, so parallel runs do not collide; each test deletes its
// own in t.Cleanup, and deletes those of an earlier run whose process is
// gone (killed before its cleanup ran).
//
// # Observing the nodes
//
// The tests drive each node by its standard input (each line is
// broadcast) and read its standard output (each delivery, as "origin (hops
// N): line") and its standard error (status lines, among them "members: N
// (...)" on each membership change). Every broadcast is a unique line;
// deliveries are recorded per node process. The tests wait for events read
// from those pipes, never for a fixed time, with generous deadlines that
// only break hangs; a deadline that passes fails the test with the last
// status lines of every node.
//
// # Figures
//
// At the end of each scenario the test logs one line: scenario, transport,
// messages broadcast, deliveries expected, deliveries seen, losses,
// duplicates (a message delivered twice to one process) and the time to
// recover, whose meaning depends on the scenario (see scenarioDefinitions
// in the tests and the README).
package e2e
