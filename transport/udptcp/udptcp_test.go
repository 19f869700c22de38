package udptcp_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
	"github.com/plumtree-go/plumtree/transport/udptcp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSamePort(t *testing.T) {
	j, err := udptcp.Listen("127.0.0.1:0", udp.Config{MaxDatagramSize: 1400}, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Datagram().LocalAddr() != j.Stream().LocalAddr() || strings.HasSuffix(j.LocalAddr(), ":0") {
		t.Errorf("addresses %s and %s", j.Datagram().LocalAddr(), j.Stream().LocalAddr())
	}
	if j.MaxDatagramSize() != 1400 || j.MaxFrameSize() != tcp.DefaultMaxFrameSize {
		t.Errorf("limits %d %d", j.MaxDatagramSize(), j.MaxFrameSize())
	}
	if _, ok := j.PeerIdentity("x"); ok {
		t.Error("identity without TLS")
	}
}

// With a fixed port whose UDP side is taken, Listen fails and leaves
// nothing bound.
func TestPortTaken(t *testing.T) {
	// Take the UDP side of a port whose TCP side is free.
	var pc net.PacketConn
	for pc == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, _ = net.ListenPacket("udp", ln.Addr().String())
		ln.Close()
	}
	defer pc.Close()
	addr := pc.LocalAddr().String()
	if j, err := udptcp.Listen(addr, udp.Config{}, tcp.Config{}); err == nil {
		j.Close()
		t.Skip("the system let TCP and UDP share the port with another UDP socket")
	}
	// The TCP port must be free again.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("TCP port left bound: %v", err)
	}
	ln.Close()
}

func TestStatsAddUp(t *testing.T) {
	a, err := udptcp.Listen("127.0.0.1:0", udp.Config{}, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := udptcp.Listen("127.0.0.1:0", udp.Config{}, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("frame")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Frames():
	case <-time.After(10 * time.Second):
		t.Fatal("no frame")
	}
	if err := a.SendDatagram(ctx, b.LocalAddr(), []byte("dg")); err != nil {
		t.Fatal(err)
	}
	if c := a.Stats().Connections; c != 1 {
		t.Errorf("Connections = %d, want 1", c)
	}
	a.Close() // the writer has counted what it wrote when Close returns
	s := a.Stats()
	if s.FramesSent != 1 || s.DatagramsSent+s.DatagramsDropped != 1 || s.BytesSent != 5+2*s.DatagramsSent || s.Connections != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A wildcard address would be advertised as "[::]:PORT", which no peer
// reaches: Listen refuses it with a reason.
func TestListenRefusesWildcard(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0"} {
		j, err := udptcp.Listen(addr, udp.Config{}, tcp.Config{})
		if err == nil {
			t.Errorf("Listen(%q) accepted, advertising %s", addr, j.LocalAddr())
			j.Close()
			continue
		}
		if !strings.Contains(err.Error(), "wildcard") {
			t.Errorf("Listen(%q): %v; want it to say wildcard", addr, err)
		}
	}
}
