package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The floor's tree has degree at most 4, its links are two-way, and it
// reaches every node from node 0.
func TestFloorTree(t *testing.T) {
	for _, n := range []int{1, 2, 5, 20, 50} {
		reached := map[int]bool{0: true}
		queue := []int{0}
		for len(queue) > 0 {
			i := queue[0]
			queue = queue[1:]
			nb := floorNeighbours(i, n)
			if len(nb) > 4 {
				t.Errorf("n=%d: node %d has %d neighbours, more than 4", n, i, len(nb))
			}
			for _, j := range nb {
				back := false
				for _, k := range floorNeighbours(j, n) {
					back = back || k == i
				}
				if !back {
					t.Errorf("n=%d: %d lists %d but not the reverse", n, i, j)
				}
				if !reached[j] {
					reached[j] = true
					queue = append(queue, j)
				}
			}
		}
		if len(reached) != n {
			t.Errorf("n=%d: the tree reaches %d nodes", n, len(reached))
		}
	}
}

// Each builtin driver, run by the harness on 5 nodes, delivers every
// broadcast to every other node exactly once, and its wire counters carry
// at least the payloads that were delivered. The drain is a hang guard,
// not a deadline the systems are held to.
func TestDriversDeliverEverything(t *testing.T) {
	for _, d := range Builtin() {
		t.Run(strings.ReplaceAll(d.Name(), "/", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			w := Workload{Nodes: 5, Size: 512, Rate: 200, Count: 40, Seed: 3, RandomOrigins: true, Drain: time.Minute}
			r, err := Run(ctx, d, w)
			if err != nil {
				t.Fatal(err)
			}
			if r.System != d.Name() || r.Count != 40 || r.Nodes != 5 || r.Size != 512 {
				t.Errorf("result describes %s, %d broadcasts, %d nodes, %d bytes", r.System, r.Count, r.Nodes, r.Size)
			}
			if r.Expected != 40*4 || r.Deliveries != r.Expected || r.DeliveryRatio != 1 {
				t.Errorf("%d of %d deliveries (ratio %v), want all %d", r.Deliveries, r.Expected, r.DeliveryRatio, 40*4)
			}
			if r.Duplicates != 0 {
				t.Errorf("%d duplicate deliveries", r.Duplicates)
			}
			if min := uint64(40 * 4 * 512); r.WireBytes < min {
				t.Errorf("wire bytes %d, fewer than the %d payload bytes delivered", r.WireBytes, min)
			}
			if r.WirePackets < 40*4 {
				t.Errorf("wire packets %d, fewer than the %d deliveries", r.WirePackets, 40*4)
			}
			if !(r.LatencyP50 > 0 && r.LatencyP50 <= r.LatencyP99 && r.LatencyP99 <= r.LatencyMax && r.LastP50 <= r.LastP99 && r.LastP99 <= r.LatencyMax) {
				t.Errorf("latencies out of order: p50 %v p99 %v max %v last p50 %v last p99 %v",
					r.LatencyP50, r.LatencyP99, r.LatencyMax, r.LastP50, r.LastP99)
			}
			if r.HeapPeak == 0 || r.AchievedRate <= 0 {
				t.Errorf("heap peak %d, achieved rate %v: not measured", r.HeapPeak, r.AchievedRate)
			}
			t.Logf("%+v", r)
		})
	}
}

// Main parses its flags, runs the named systems and writes the report: a
// JSON report with one result per system, all deliveries made, and the
// wire's source named.
func TestMainJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Main(ctx, []string{"-systems", "floor", "-nodes", "4", "-count", "30", "-rate", "300", "-size", "64", "-netns", "off", "-json"}, &out, &errOut)
	if err != nil {
		t.Fatalf("Main: %v\n%s", err, errOut.String())
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	if rep.Wire != wireTransports {
		t.Errorf("wire source %q, want %q", rep.Wire, wireTransports)
	}
	if len(rep.Results) != 1 || rep.Results[0].System != "floor" || rep.Results[0].DeliveryRatio != 1 || rep.Results[0].Loopback != nil {
		t.Errorf("results %+v, want floor alone, everything delivered, no loopback count", rep.Results)
	}
}

// A sweep on the floor reports each step and a sustainable rate no higher
// than the last step tried; the text report names the system.
func TestMainSweepText(t *testing.T) {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Main(ctx, []string{"-systems", "floor", "-sweep", "-sizes", "64", "-rates", "100,200", "-step", "0.1",
		"-nodes", "3", "-count", "10", "-netns", "off", "-bound", "10s"}, &out, &errOut)
	if err != nil {
		t.Fatalf("Main: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "floor") || !strings.Contains(out.String(), "sustainable/s") {
		t.Errorf("sweep report lacks the system or its column:\n%s", out.String())
	}
}

// Bad flags are refused with a reason, before anything starts.
func TestMainRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-systems", "nosuch"},
		{"-size", "4"},
		{"-nodes", "1"},
		{"-netns", "maybe"},
		{"-cpuprofile", "x.prof"}, // more than one system
		{"-sweep", "-rates", "200,100"},
		{"stray"},
	} {
		var out, errOut bytes.Buffer
		if err := Main(context.Background(), args, &out, &errOut); err == nil {
			t.Errorf("Main(%q) = nil, want an error", args)
		}
	}
}

// Extra drivers join the builtin ones under their own names.
func TestMainExtraDriver(t *testing.T) {
	var out, errOut bytes.Buffer
	extra := namedDriver{Driver: Floor(), name: "floor-again"}
	err := Main(context.Background(), []string{"-systems", "floor-again", "-nodes", "3", "-count", "5", "-rate", "500", "-netns", "off"}, &out, &errOut, extra)
	if err != nil {
		t.Fatalf("Main: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "floor-again") {
		t.Errorf("report lacks the extra driver:\n%s", out.String())
	}
}

type namedDriver struct {
	Driver
	name string
}

func (d namedDriver) Name() string { return d.name }
