package plan

import (
	"fmt"
	"strings"
)

// Explain says in words which step limits the pipeline under c and why,
// from the prediction p and the profile, and what the plan changed from
// the default d (nil: nothing to compare).
func Explain(prof *Profile, c Config, p Prediction, d *Prediction, dc *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Predicted: %.0f batches/s, p50 %.0f ms, p99 %.0f ms.\n", p.BatchesPerS, p.P50Ms, p.P99Ms)
	if d != nil && d.BatchesPerS > 0 {
		fmt.Fprintf(&b, "The default deployment (%s) does %.0f batches/s: this plan is %.1f× that.\n", dc, d.BatchesPerS, p.BatchesPerS/d.BatchesPerS)
	}
	if p.Bottleneck == "input" {
		b.WriteString("No step is saturated: every step's workers and transactions are busy less than half the time, so the pipeline keeps up with its input, and its latency is the sum of each step's model time, commits and fetches.\n")
	}
	for i, sp := range p.Steps {
		sc := c.Steps[i]
		stp := prof.Steps[i]
		mark := " "
		if sp.Name == p.Bottleneck {
			mark = "*"
		}
		cpu := ""
		if sp.CPUShare > 0 {
			cpu = fmt.Sprintf(", cores busy %.0f%%", 100*sp.CPUShare)
		}
		fmt.Fprintf(&b, "%s step %s: %d consumer(s) × %d workers, transactions of at most %d: workers busy %.0f%%, committing %.0f%% of the time%s, %.2f attempts per batch (%s).\n",
			mark, sp.Name, sp.Consumers, sc.Workers, sc.MaxPoll, 100*sp.Utilization, 100*sp.CommitShare, cpu, sp.AttemptsPerBatch, cascadeWords(stp))
		if sp.Consumers < sc.Consumers {
			fmt.Fprintf(&b, "  Only %d of its %d consumers own partitions (the topics have %d): the others sit idle.\n", sp.Consumers, sc.Consumers, c.Partitions)
		}
	}
	switch p.Bottleneck {
	case "cpu":
		fmt.Fprintf(&b, "The cores the stages share with the broker limit the pipeline: the stages' own work keeps %.0f%% of them busy and the broker's %.0f%% (its transactions, requests and partitions), so more workers or consumers would only wait for a core. More cores, or the broker on cores of its own, raise it; fewer partitions and larger transactions (--max-poll) cut the broker's share.\n",
			100*p.CPUShare, 100*p.BrokerCPUShare)
	case "broker":
		fmt.Fprintf(&b, "The broker's cores limit the pipeline: its work on the transactions, requests and partitions keeps %.0f%% of them busy. Fewer partitions and larger transactions (--max-poll) cut that work; more broker cores raise the limit.\n",
			100*p.BrokerCPUShare)
	default:
		if p.BrokerCPUShare > 0 {
			fmt.Fprintf(&b, "The broker keeps %.0f%% of its cores busy.\n", 100*p.BrokerCPUShare)
		}
	}
	if p.Bottleneck != "input" {
		for i, sp := range p.Steps {
			if sp.Name != p.Bottleneck {
				continue
			}
			sc := c.Steps[i]
			ms := modelMs(prof.Steps[i])
			switch sp.Limit {
			case "cpu":
				fmt.Fprintf(&b, "Step %s limits the pipeline: its consumers' cores are busy %.0f%% of the time with the stage's own work (%.3f ms per attempt: decoding, ranking, assertions, encoding, the trace), so more workers would only wait for a core. More consumers (up to the partitions), or more cores each, raise it.\n",
					sp.Name, 100*sp.CPUShare, prof.StageCPUMs)
			case "workers":
				fmt.Fprintf(&b, "Step %s limits the pipeline: its %d worker(s) per consumer are busy %.0f%% of the time, and each batch takes %.1f ms of model time there on average, so %d consumer(s) pass on at most about %.0f batches/s. More workers (if its models' servers take the calls) or more consumers (up to the partitions) raise it.\n",
					sp.Name, sc.Workers, 100*sp.Utilization, ms, sp.Consumers, float64(sp.Consumers*sc.Workers)/ms*1000)
			case "transactions":
				fmt.Fprintf(&b, "Step %s limits the pipeline: its consumers spend %.0f%% of their time flushing and committing transactions of %.1f batches on average (a commit takes about %.1f ms on this broker). A larger --max-poll puts more batches in each commit; more consumers commit in parallel.\n",
					sp.Name, 100*sp.CommitShare, sp.BatchesPerTxn, prof.Broker.CommitMs.Mean)
			default:
				fmt.Fprintf(&b, "Step %s is the busiest step (workers %.0f%%, committing %.0f%%).\n", sp.Name, 100*sp.Utilization, 100*sp.CommitShare)
			}
		}
	}
	return b.String()
}

// modelMs is the mean model time per batch at a step, retries included,
// along its cascade.
func modelMs(sp StepProfile) float64 {
	var ms, reach float64 = 0, 1
	for _, name := range sp.Cascade {
		m := sp.model(name)
		ms += reach * m.LatencyMs.Mean
		reach *= 1 - m.Pass
	}
	return ms
}

func cascadeWords(sp StepProfile) string {
	var parts []string
	for _, name := range sp.Cascade {
		m := sp.model(name)
		parts = append(parts, fmt.Sprintf("%s %.0f ms, passes %.0f%%", name, m.LatencyMs.Mean, 100*m.Pass))
	}
	return strings.Join(parts, " → ")
}
