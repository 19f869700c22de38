// Package mem is an in-memory network: the reference transport, with seeded
// faults, for tests.
//
// A Network is a set of Transports that reach each other by address. Each
// Transport implements transport.Datagram, transport.Stream and
// transport.StatsReporter without sockets: frames move through channels, and
// delays are time.AfterFunc timers. Nothing runs in the background except
// what a Transport starts itself (one goroutine per Transport that hands
// stream frames to the receiver, and the timers of delayed deliveries), and
// Close stops all of it. This makes the package usable inside
// testing/synctest bubbles, where time is virtual and a test ends only when
// every goroutine it started has stopped.
//
// Faults are configured in Config: datagrams can be dropped, duplicated,
// reordered and delayed with latency and jitter; streams see the same latency
// but stay reliable and ordered per (sender, receiver) pair, and they apply
// backpressure when the receiver's queue is full. Partition splits the
// network into groups that cannot reach each other until Heal.
//
// The faults are deterministic: every random choice comes from one PCG
// generator seeded with Config.Seed, so the same seed and the same sequence of
// calls give the same faults. Each SendDatagram draws the same number of
// values whatever the rates and whatever the destination, so changing one
// rate does not shift the pattern of the others.
//
// Like package transport itself, this package must never import the gossip
// core: it moves opaque bytes and nothing more.
package mem
