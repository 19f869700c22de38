package chaos_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/chaos"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// Wrap two transports with one chaos Network: datagrams are lost, frames go
// through, and a partition cuts the stream path until Heal.
func Example() {
	memNet := mem.NewNetwork(mem.Config{})
	cn, err := chaos.New(chaos.Config{
		Seed:  1,
		Rules: []chaos.Rule{{Path: transport.PathDatagram, Drop: 1}}, // every datagram lost
	})
	if err != nil {
		panic(err)
	}
	open := func(addr string) chaos.Wrapped {
		inner, err := memNet.Listen(addr)
		if err != nil {
			panic(err)
		}
		w, err := cn.Wrap(inner) // any transport.Transport: udp, tcp, quic, yours
		if err != nil {
			panic(err)
		}
		return w
	}
	a, b := open("a"), open("b")
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	aDg, aSt, bSt := a.(transport.Datagram), a.(transport.Stream), b.(transport.Stream)

	_ = aDg.SendDatagram(ctx, "b", []byte("lost")) // nil: a network loses datagrams silently
	_ = aSt.SendFrame(ctx, "b", []byte("hello"))
	m := <-bSt.Frames()
	fmt.Printf("%s from %s\n", m.Data, m.From)

	cn.Partition([]string{"a"}, []string{"b"})
	err = aSt.SendFrame(ctx, "b", []byte("cut"))
	fmt.Println("across the partition, unreachable:", errors.Is(err, transport.ErrUnreachable))

	cn.Heal()
	_ = aSt.SendFrame(ctx, "b", []byte("healed"))
	m = <-bSt.Frames()
	fmt.Printf("%s from %s\n", m.Data, m.From)

	s := cn.Stats()
	fmt.Printf("dropped %d, partitioned %d, failed %d\n", s.Dropped, s.Partitioned, s.Failed)
	// Output:
	// hello from a
	// across the partition, unreachable: true
	// healed from a
	// dropped 1, partitioned 1, failed 1
}
