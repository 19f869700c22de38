package topic

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/plumtree-go/plumtree/transport"
)

// recvQueue is the receive buffer of a topic's transport, per path.
const recvQueue = 256

// vtransport is the transport a topic's Plumtree runs on: the host's real
// transport, with the topic's tag before every frame it sends and only the
// frames of its tag to read. It offers the paths the real transport has
// (see asTransport).
type vtransport struct {
	tag    uint64
	name   string
	prefix [PrefixLen]byte
	dg     transport.Datagram // nil without a datagram path
	st     transport.Stream   // nil without a stream path
	auth   bool
	bufs   *sync.Pool

	dgIn, frIn chan transport.Message

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup // router deliveries under way
	done     chan struct{}

	dgSent, dgRecv, dgDropped atomic.Uint64
	frSent, frRecv, frDropped atomic.Uint64
	bytesSent, bytesRecv      atomic.Uint64
}

func newVTransport(tag uint64, name string, dg transport.Datagram, st transport.Stream, auth bool, bufs *sync.Pool) *vtransport {
	v := &vtransport{tag: tag, name: name, dg: dg, st: st, auth: auth, bufs: bufs, done: make(chan struct{})}
	appendPrefix(v.prefix[:0], tag)
	if dg != nil {
		v.dgIn = make(chan transport.Message, recvQueue)
	}
	if st != nil {
		v.frIn = make(chan transport.Message, recvQueue)
	}
	return v
}

// asTransport is v as a value that implements exactly the paths the real
// transport has: the core picks its paths by type assertion.
func (v *vtransport) asTransport() transport.Transport {
	switch {
	case v.dg != nil && v.st != nil:
		return vBoth{v}
	case v.dg != nil:
		return vDatagram{v}
	default:
		return vStream{v}
	}
}

type vDatagram struct{ *vtransport }

func (d vDatagram) SendDatagram(ctx context.Context, addr string, b []byte) error {
	return d.sendDatagram(ctx, addr, b)
}
func (d vDatagram) MaxDatagramSize() int                { return d.maxDatagram() }
func (d vDatagram) Datagrams() <-chan transport.Message { return d.dgIn }

type vStream struct{ *vtransport }

func (s vStream) SendFrame(ctx context.Context, addr string, b []byte) error {
	return s.sendFrame(ctx, addr, b)
}
func (s vStream) MaxFrameSize() int                { return s.maxFrame() }
func (s vStream) Frames() <-chan transport.Message { return s.frIn }

type vBoth struct{ *vtransport }

func (d vBoth) SendDatagram(ctx context.Context, addr string, b []byte) error {
	return d.sendDatagram(ctx, addr, b)
}
func (d vBoth) MaxDatagramSize() int                { return d.maxDatagram() }
func (d vBoth) Datagrams() <-chan transport.Message { return d.dgIn }
func (s vBoth) SendFrame(ctx context.Context, addr string, b []byte) error {
	return s.sendFrame(ctx, addr, b)
}
func (s vBoth) MaxFrameSize() int                { return s.maxFrame() }
func (s vBoth) Frames() <-chan transport.Message { return s.frIn }

var (
	_ transport.Datagram      = vDatagram{}
	_ transport.Stream        = vStream{}
	_ transport.Datagram      = vBoth{}
	_ transport.Stream        = vBoth{}
	_ transport.StatsReporter = vBoth{}
	_ transport.Authenticator = vBoth{}
)

// LocalAddr is the real transport's address: a topic is reached where its
// host is.
func (v *vtransport) LocalAddr() string {
	if v.dg != nil {
		return v.dg.LocalAddr()
	}
	return v.st.LocalAddr()
}

// Authenticates passes on what the real transport says of Message.Identity.
func (v *vtransport) Authenticates() bool { return v.auth }

// Stats counts the topic's own frames (the host prefix included in the
// bytes).
func (v *vtransport) Stats() transport.Stats {
	return transport.Stats{
		DatagramsSent: v.dgSent.Load(), DatagramsReceived: v.dgRecv.Load(), DatagramsDropped: v.dgDropped.Load(),
		FramesSent: v.frSent.Load(), FramesReceived: v.frRecv.Load(), FramesDropped: v.frDropped.Load(),
		BytesSent: v.bytesSent.Load(), BytesReceived: v.bytesRecv.Load(),
	}
}

// Close stops routing to the topic and closes its receive channels. The
// real transport stays open.
func (v *vtransport) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	close(v.done)
	v.mu.Unlock()
	v.inflight.Wait()
	if v.dgIn != nil {
		close(v.dgIn)
	}
	if v.frIn != nil {
		close(v.frIn)
	}
	return nil
}

func (v *vtransport) maxDatagram() int { return v.dg.MaxDatagramSize() - PrefixLen }
func (v *vtransport) maxFrame() int    { return v.st.MaxFrameSize() - PrefixLen }

func (v *vtransport) isClosed() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// framed returns a pooled buffer holding the prefix and b.
func (v *vtransport) framed(b []byte) *[]byte {
	bp := v.bufs.Get().(*[]byte)
	*bp = append(append((*bp)[:0], v.prefix[:]...), b...)
	return bp
}

func (v *vtransport) sendDatagram(ctx context.Context, addr string, b []byte) error {
	return v.send(ctx, transport.PathDatagram, addr, b)
}

// sendFrame hands the frame to the real transport from the caller's
// goroutine: each topic's Plumtree has its own sender per peer, so each
// topic has at most one frame waiting at the real transport's per-peer
// queue, and the topics take turns there (see the package doc, Isolation).
func (v *vtransport) sendFrame(ctx context.Context, addr string, b []byte) error {
	return v.send(ctx, transport.PathStream, addr, b)
}

// send prefixes b and hands it to the real transport on path, counting it
// when the transport takes it.
func (v *vtransport) send(ctx context.Context, path transport.Path, addr string, b []byte) error {
	if v.isClosed() {
		return fmt.Errorf("topic %q: send %s to %s: %w", v.name, path, addr, transport.ErrClosed)
	}
	var limit int
	if path == transport.PathDatagram {
		limit = v.maxDatagram()
	} else {
		limit = v.maxFrame()
	}
	if len(b) > limit {
		return &transport.TooLargeError{Path: path, Size: len(b), Limit: limit}
	}
	bp := v.framed(b)
	var err error
	if path == transport.PathDatagram {
		if err = v.dg.SendDatagram(ctx, addr, *bp); err == nil {
			v.dgSent.Add(1)
		}
	} else if err = v.st.SendFrame(ctx, addr, *bp); err == nil {
		v.frSent.Add(1)
	}
	v.bufs.Put(bp)
	if err == nil {
		v.bytesSent.Add(uint64(len(b) + PrefixLen))
	}
	return err
}

// deliver hands a received message (prefix removed) to the topic. A
// datagram finds room or is dropped and counted; a frame waits for room,
// as a stream does, until the topic closes. It reports false once the
// topic is closed.
func (v *vtransport) deliver(m transport.Message, n int) bool {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return false
	}
	v.inflight.Add(1)
	v.mu.Unlock()
	defer v.inflight.Done()
	if m.Path == transport.PathDatagram {
		select {
		case v.dgIn <- m:
			v.dgRecv.Add(1)
			v.bytesRecv.Add(uint64(n))
		default:
			v.dgDropped.Add(1)
		}
		return true
	}
	select {
	case v.frIn <- m:
		v.frRecv.Add(1)
		v.bytesRecv.Add(uint64(n))
		return true
	case <-v.done:
		v.frDropped.Add(1)
		return false
	}
}
