package suggest

import "testing"

func TestClosest(t *testing.T) {
	for _, c := range []struct {
		s    string
		in   []string
		want string
	}{
		{"stpes", []string{"workflow", "steps", "schemas"}, "steps"}, // a swap is one edit
		{"modles", []string{"models", "name"}, "models"},
		{"confidnce", []string{"confidence", "predicted"}, "confidence"},
		{"BROKRS", []string{"BROKERS", "REPLICAS"}, "BROKERS"},
		{"zzzz", []string{"steps", "models"}, ""}, // nothing near enough
		{"x", nil, ""},
	} {
		if got := Closest(c.s, c.in); got != c.want {
			t.Errorf("Closest(%q, %v) = %q, want %q", c.s, c.in, got, c.want)
		}
	}
}
