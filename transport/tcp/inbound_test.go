package tcp_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/transport/tcp"
)

// TestMaxInboundConnections: past the cap, a new connection is closed as
// soon as it is accepted, so that whoever can reach the port cannot hold
// memory without bound.
func TestMaxInboundConnections(t *testing.T) {
	// A long DialTimeout keeps the first two (which never send a hello)
	// open for the whole test.
	tr, err := tcp.Listen("127.0.0.1:0", tcp.Config{MaxInboundConnections: 2, DialTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", tr.LocalAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// The deadline only breaks a hang.
	conns[2].SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := conns[2].Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the third connection read %v; want it closed (EOF)", err)
	}
}
