package conformance_test

import (
	"fmt"
	"testing"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// A transport of your own is checked with one call from its tests:
//
//	func TestMyTransport(t *testing.T) {
//		conformance.TestTransport(t, myNetwork)
//		conformance.TestBroadcast(t, myNetwork, static.New[string])
//	}
//
// CheckTransport runs the same rules anywhere and returns what broke. Here
// the in-memory network stands in for your transport.
func Example() {
	myNetwork := func(t testing.TB) conformance.ListenFunc {
		n := mem.NewNetwork(mem.Config{}) // a fresh network for each subtest
		return func(addr string) (transport.Transport, error) {
			return n.Listen(addr) // "" means any free address
		}
	}
	for _, f := range conformance.CheckTransport(myNetwork) {
		fmt.Println("broken:", f.Subtest, "-", f.Rule)
		for _, m := range f.Messages {
			fmt.Println("   ", m) // what the suite saw
		}
	}
	fmt.Println(len(conformance.TransportSubtests()), "rules checked")
	// Output: 38 rules checked
}
