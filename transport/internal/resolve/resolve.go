// Package resolve turns "host:port" into an address for the datagram
// transports, caching what DNS answered: a peer advertised by host name
// would otherwise cost a lookup on every datagram, on the sender's
// protocol loop.
package resolve

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

const (
	// TTL is how long a looked-up address is used before it is looked up
	// again.
	TTL = 30 * time.Second
	// maxEntries bounds the cache; when full, it starts over.
	maxEntries = 4096
)

// Cache resolves and remembers. The zero value is ready; it is safe for
// concurrent use.
type Cache struct {
	mu      sync.Mutex
	entries map[string]entry
	now     func() time.Time // for tests; nil means time.Now
	lookup  func(string) (netip.AddrPort, error)
}

type entry struct {
	ap      netip.AddrPort
	expires time.Time
}

// Resolve returns addr's address: parsed when it is an IP literal (no
// cache, no lookup), otherwise from the cache or a DNS lookup.
func (c *Cache) Resolve(addr string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap, nil
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	c.mu.Lock()
	e, ok := c.entries[addr]
	c.mu.Unlock()
	if ok && now().Before(e.expires) {
		return e.ap, nil
	}
	lookup := c.lookup
	if lookup == nil {
		lookup = lookupUDP
	}
	ap, err := lookup(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= maxEntries {
		c.entries = make(map[string]entry)
	}
	c.entries[addr] = entry{ap: ap, expires: now().Add(TTL)}
	c.mu.Unlock()
	return ap, nil
}

func lookupUDP(addr string) (netip.AddrPort, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return ua.AddrPort(), nil
}
