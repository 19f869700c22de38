package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun runs the program and checks that every subscriber printed every
// message of its topics once, and that n3, which does not subscribe to
// orders, printed none.
func TestRun(t *testing.T) {
	// The deadline only breaks a hang; run returns as soon as all is delivered.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	want := []string{
		`n0 orders: {ID:2 Item:widget Count:20} from n1`,
		`n1 orders: {ID:1 Item:widget Count:10} from n0`,
		`n2 orders: {ID:1 Item:widget Count:10} from n0`,
		`n2 orders: {ID:2 Item:widget Count:20} from n1`,
		`n3 prices: "widget 4.00" from n0`,
		`n0 prices: "widget 7.75" from n3`,
	}
	for _, w := range want {
		if strings.Count(got, w+"\n") != 1 {
			t.Errorf("output has %q %d times, want once:\n%s", w, strings.Count(got, w+"\n"), got)
		}
	}
	if strings.Contains(got, "n3 orders") {
		t.Errorf("n3 delivered orders without subscribing:\n%s", got)
	}
	if n := strings.Count(got, " prices: "); n != 12 {
		t.Errorf("%d price deliveries, want 12 (4 broadcasts × 3 other nodes):\n%s", n, got)
	}
}
