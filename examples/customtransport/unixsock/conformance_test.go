//go:build unix

package unixsock_test

import (
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/examples/customtransport/unixsock"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// network gives each subtest a directory of its own. It is made with
// os.MkdirTemp rather than t.TempDir, whose name includes the test's and
// could pass the ~100-byte limit of a socket path.
func network(t testing.TB) conformance.ListenFunc {
	dir, err := os.MkdirTemp("", "us")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var n atomic.Int64
	return func(addr string) (transport.Transport, error) {
		if addr == "" {
			addr = filepath.Join(dir, "n"+strconv.FormatInt(n.Add(1), 10))
		}
		return unixsock.Listen(addr, unixsock.Config{})
	}
}

func TestTransport(t *testing.T) { conformance.TestTransport(t, network) }

func TestBroadcast(t *testing.T) { conformance.TestBroadcast(t, network, static.New[string]) }
