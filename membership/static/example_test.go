package static_test

import (
	"fmt"

	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
)

// A Static starts with the members it is given (no events for those) and
// reports each later change on Events, which the gossip runner reads.
func ExampleNew() {
	view := static.New(
		membership.Member[string]{ID: "a", Addr: "10.0.0.1:7946"},
		membership.Member[string]{ID: "b", Addr: "10.0.0.2:7946"},
	)
	defer view.Close()

	view.Add(membership.Member[string]{ID: "c", Addr: "10.0.0.3:7946"})
	view.Fail("a")
	view.Remove("b")
	for range 3 {
		ev := <-view.Events()
		fmt.Println(ev.Kind, ev.Member.ID)
	}
	fmt.Println(view.Members())
	// Output:
	// join c
	// fail a
	// leave b
	// [{c 10.0.0.3:7946}]
}
