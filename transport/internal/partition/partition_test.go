package partition

import "testing"

func TestReachable(t *testing.T) {
	g := New([]string{"a", "b"}, []string{"c"}, []string{"b", "d"})
	cases := []struct {
		from, to string
		want     bool
	}{
		{"a", "a", true},
		{"a", "c", false},
		{"c", "a", false},
		{"a", "b", false}, // b belongs to its last group
		{"b", "d", true},
		{"a", "x", true}, // x is in no group
		{"x", "c", true},
	}
	for _, c := range cases {
		if got := g.Reachable(c.from, c.to); got != c.want {
			t.Errorf("Reachable(%s, %s) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	if !Groups(nil).Reachable("a", "c") {
		t.Error("no partition separates a from c")
	}
}
