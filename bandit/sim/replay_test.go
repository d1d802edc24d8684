package sim

import (
	"fmt"
	"strings"
	"testing"
)

// trapTable is a two-step table where the upstream choice matters: at the
// first step "cheap" always passes for 1 ms and "careful" for 4 ms, but
// after cheap the second step's "fast" model passes only 30% of the time
// and "slow" (20 ms) always; after careful, fast always passes. Locally
// cheap is best; for the workflow careful is.
func trapTable(items int) string {
	var b strings.Builder
	b.WriteString(TableHeader + "\n")
	for i := 0; i < items; i++ {
		fmt.Fprintf(&b, "%d,clean,,cheap,true,1\n%d,clean,,careful,true,4\n", i, i)
		fastAfterCheap := i%10 < 3
		fmt.Fprintf(&b, "%d,label,cheap,fast,%v,2\n%d,label,cheap,slow,true,20\n", i, fastAfterCheap, i)
		fmt.Fprintf(&b, "%d,label,careful,fast,true,2\n%d,label,careful,slow,true,20\n", i, i)
	}
	return b.String()
}

func TestReplayFindsTheUpstreamThatMatters(t *testing.T) {
	tb, err := ReadTable(strings.NewReader(trapTable(2000)), "trap.csv")
	if err != nil {
		t.Fatal(err)
	}
	if tb.Items != 2000 || len(tb.Steps) != 2 || tb.Steps[1].Name != "label" || len(tb.Steps[1].Models) != 2 {
		t.Fatalf("parsed %d items, steps %+v", tb.Items, tb.Steps)
	}
	rep, err := ReplayBench(tb, ReplayOptions{Seeds: 3})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]PolicyReport{}
	for _, p := range rep.Policies {
		got[p.Name] = p
		t.Logf("%-14s cost/delivered %.2f  delivered %.3f  regret %+.3f", p.Name, p.CostPerDelivered, p.DeliveryRate, p.Regret)
	}
	// The oracle learns careful → fast: 4 + 2 = 6 ms per item. Always
	// cheap: 1 + 2 + 0.7·20 = 17 ms.
	if o := got[Oracle].CostPerDelivered; o < 5.9 || o > 6.5 {
		t.Errorf("oracle cost per delivered %.2f, want about 6", o)
	}
	if c := got[Clairvoyant].CostPerDelivered; c > got[Oracle].CostPerDelivered {
		t.Errorf("clairvoyant %.2f costs more than the oracle %.2f", c, got[Oracle].CostPerDelivered)
	}
	ff, th := got["flexiflow"], got["thompson"]
	if ff.Regret > 0.10 {
		t.Errorf("flexiflow regret %.3f, want ≤ 0.10", ff.Regret)
	}
	if ff.CostPerDelivered > 0.9*th.CostPerDelivered {
		t.Errorf("flexiflow %.2f is not 10%% cheaper than thompson %.2f (local only) where the upstream choice matters", ff.CostPerDelivered, th.CostPerDelivered)
	}
	for _, p := range rep.Policies {
		if p.DeliveryRate != 1 {
			t.Errorf("%s delivered %.3f, want every item (every path delivers)", p.Name, p.DeliveryRate)
		}
	}
}

func TestReadTableErrors(t *testing.T) {
	head := TableHeader + "\n"
	for _, c := range []struct{ csv, want string }{
		{"item,step,model\n", "t.csv:1: "},
		{"item,step,upstream,model,ok,cost_ms\n", `t.csv:1: header "item,step,upstream,model,ok,cost_ms", want`},
		{head + "0,a,,m,yes,1\n", "t.csv:2: passed \"yes\""},
		{head + "0,a,,m,true,-1\n", "t.csv:2: cost_ms \"-1\""},
		{head + "0,a,x,m,true,1\n", "t.csv:2: upstream \"x\" at the first step"},
		{head + "0,a,,m,true,1\n0,b,zz,n,true,1\n", "t.csv:3: upstream \"zz\" is not a model of step a"},
		{head + "0,a,,m,true,1\n0,a,,m,false,1\n", "t.csv:3: a second row for item 0, step a, upstream \"\", model m (the first is line 2)"},
		{head + "0,a,,m,true,1\n2,a,,m,true,1\n", "t.csv:3: item 2 after item 0"},
		{head + "1,a,,m,true,1\n0,a,,m,true,1\n", "t.csv:2: step \"a\" first appears at item 1"},
		{head + "0,a,,m,true,1\n0,a,,n,true,1\n1,a,,m,true,1\n", "t.csv: item 1, step a: no row for upstream \"\" and model n"},
		{head + "0,a,,m,true,1\n0,b,m,n,true,1\n0,a,,k,true,1\n", "t.csv: item 0, step b: no row for upstream \"k\" and model n"},
		{head, "no rows"},
	} {
		_, err := ReadTable(strings.NewReader(c.csv), "t.csv")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.csv, err, c.want)
		}
	}
}
