package seal

import "github.com/plumtree-go/plumtree/transport"

// SealFor returns the frame s would send to the address to carrying p on
// path, as an observer of the network would capture it on its way there.
func SealFor(s Transport, p []byte, path transport.Path, to string) []byte {
	var c *core
	switch v := s.(type) {
	case *both:
		c = v.core
	case *datagramOnly:
		c = v.core
	case *streamOnly:
		c = v.core
	}
	out, _ := c.kr.seal(nil, nil, p, path, c.local, to, c.o.bindFrom, c.o.clock.Now())
	return out
}
