package sim

// detector measures how fast a policy follows a change of the oracle's first
// choice at one step: for each change that lasts at least minRun batches,
// the batches until the policy's first choice agrees with the oracle's new
// one in at least 15 of 20 consecutive decisions.
type detector struct {
	oracle, policy []int
}

const minRun = 50

func (d *detector) observe(_ int, oracleFirst, policyFirst int) {
	d.oracle = append(d.oracle, oracleFirst)
	d.policy = append(d.policy, policyFirst)
}

// delays lists one delay per lasting change of the oracle's first choice.
func (d *detector) delays(_ int) []float64 {
	var out []float64
	n := len(d.oracle)
	for b := 1; b < n; b++ {
		if d.oracle[b] == d.oracle[b-1] {
			continue
		}
		end := b
		for end < n && d.oracle[end] == d.oracle[b] {
			end++
		}
		if end-b < minRun {
			continue
		}
		delay := float64(end - b) // never followed within the change
		for x := b; x+20 <= end; x++ {
			agree := 0
			for y := x; y < x+20; y++ {
				if d.policy[y] == d.oracle[b] {
					agree++
				}
			}
			if agree >= 15 {
				delay = float64(x - b)
				break
			}
		}
		out = append(out, delay)
	}
	return out
}
