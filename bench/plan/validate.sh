#!/usr/bin/env bash
# Checks flexiflow plan's simulator against real runs of
# examples/planner.yaml: calibrate the broker, run the default deployment
# to write traces, profile them, plan for 3 and 6 cores, then run eight
# configurations (the default, both plans and five others) and compare the
# measured throughput and p99 with the predicted ones.
#
#   bash deploy/kafka/kafka.sh up
#   bash bench/plan/validate.sh 127.0.0.1:19092 bench/plan/results
#
# Writes OUT/broker.json, profile.json, plan-3.json, plan-6.json, one
# validate-<name>.json per configuration and table.md. Takes about
# 8 minutes on 2 cores.
set -euo pipefail
brokers=${1:?usage: validate.sh BROKERS OUTDIR}
out=${2:?usage: validate.sh BROKERS OUTDIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
wf=$here/examples/planner.yaml
mkdir -p "$out"
ff=${FLEXIFLOW:-$here/bin/flexiflow}
if [[ ! -x $ff || -n ${REBUILD:-} ]]; then
  (cd "$here" && go build -o bin/flexiflow ./cmd/flexiflow)
  ff=$here/bin/flexiflow
fi

echo "calibrating $brokers" >&2
"$ff" plan calibrate --brokers "$brokers" --out "$out/broker.json"
# The stage's CPU per attempt: two runs, one slow and one as fast as the
# machine goes (where a plan runs), give the process's idle CPU rate and
# its CPU per attempt (cpu = idle × wall + per-attempt × attempts).
config() { # NAME PARTITIONS "C W P" "C W P" "C W P": a configuration file
  local name=$1 parts=$2; shift 2
  local steps=()
  for s in parse score verify; do
    read -r c w p <<< "$1"; shift
    steps+=("{\"name\":\"$s\",\"consumers\":$c,\"workers\":$w,\"max_poll\":$p}")
  done
  echo "{\"workflow\":\"planner\",\"config\":{\"partitions\":$parts,\"steps\":[$(IFS=,; echo "${steps[*]}")]}}" > "$out/config-$name.json"
}
config cpu 2 "1 256 512" "1 256 512" "1 256 512"
echo "CPU run" >&2
"$ff" plan validate --workflow "$wf" --brokers "$brokers" --config "$out/config-cpu.json" --batches 20000 --reset-topics --format json > "$out/cpu-run.json"
echo "default run: traces to profile" >&2
started=$(date +%s)
"$ff" plan validate --workflow "$wf" --brokers "$brokers" --default --batches 1000 --reset-topics --format json > "$out/traces-run.json"
cpu_ms=$(python3 - "$out" <<'PY'
import json, sys
a = json.load(open(f"{sys.argv[1]}/cpu-run.json"))["measured"]
b = json.load(open(f"{sys.argv[1]}/traces-run.json"))["measured"]
# cpu = idle*wall + per*attempts, two runs, two unknowns
det = a["wall_s"] * b["attempts"] - b["wall_s"] * a["attempts"]
per = (a["wall_s"] * b["cpu_s"] - b["wall_s"] * a["cpu_s"]) / det
print(f"{max(per, 0) * 1000:.4f}")
PY
)
echo "stage CPU per attempt: $cpu_ms ms" >&2
# Only the default run's traces: other runs load the machine differently,
# and their models' latencies with it.
"$ff" plan profile --workflow "$wf" --traces-from "$brokers" --broker-profile "$out/broker.json" \
  --since "$(( $(date +%s) - started + 2 ))s" --stage-cpu-ms "$cpu_ms" --out "$out/profile.json"
for cores in 3 6; do
  "$ff" plan --workflow "$wf" --profile "$out/profile.json" --budget-cores "$cores" --batches 10000 --format json --explain > "$out/plan-$cores.json"
done

config default 6 "1 2 32" "1 2 32" "1 2 32"
config workers-8 6 "1 8 32" "1 8 32" "1 8 32"
config workers-32 6 "1 32 32" "1 32 32" "1 32 32"
config poll-4 6 "1 64 4" "1 64 4" "1 64 4"
config poll-1 6 "1 16 1" "1 16 1" "1 16 1"
config two-each 6 "2 4 32" "2 4 32" "2 4 32"
config score-heavy 6 "1 4 32" "3 8 32" "1 4 32"

run() { # NAME CONFIG BATCHES
  echo "validating $1" >&2
  "$ff" plan validate --workflow "$wf" --brokers "$brokers" --config "$2" --profile "$out/profile.json" \
    --batches "$3" --reset-topics --format json > "$out/validate-$1.json"
}
run default "$out/config-default.json" 1000
run workers-8 "$out/config-workers-8.json" 2000
run workers-32 "$out/config-workers-32.json" 6000
run poll-4 "$out/config-poll-4.json" 4000
run poll-1 "$out/config-poll-1.json" 1000
run two-each "$out/config-two-each.json" 2000
run score-heavy "$out/config-score-heavy.json" 3000
run plan-3 "$out/plan-3.json" 30000
run plan-6 "$out/plan-6.json" 30000

python3 - "$out" <<'PY'
import json, sys, statistics, glob, os
out = sys.argv[1]
rows, errs = [], []
for name in ["default", "workers-8", "workers-32", "poll-4", "poll-1", "two-each", "score-heavy", "plan-3", "plan-6"]:
    v = json.load(open(f"{out}/validate-{name}.json"))
    c, m, p = v["config"], v["measured"], v["predicted"]
    et, el = p["batches_per_s"] / m["batches_per_s"] - 1, p["p99_ms"] / m["p99_ms"] - 1
    errs += [abs(et), abs(el)]
    steps = " · ".join(f'{s["name"]} {s["consumers"]}×{s["workers"]}w/{s["max_poll"]}' for s in c["steps"])
    rows.append(f'| {name} | {c["partitions"]} | {steps} | {v["workload"]["batches"]} | {m["batches_per_s"]:.1f} | {p["batches_per_s"]:.1f} | {100*et:+.1f}% | {m["p99_ms"]:.0f} | {p["p99_ms"]:.0f} | {100*el:+.1f}% |')
d = json.load(open(f"{out}/validate-default.json"))["measured"]["batches_per_s"]
p3 = json.load(open(f"{out}/validate-plan-3.json"))["measured"]["batches_per_s"]
with open(f"{out}/table.md", "w") as f:
    f.write("| configuration | partitions | steps (consumers×workers/max-poll) | batches | measured batches/s | predicted | error | measured p99 ms | predicted | error |\n|---|---|---|---|---|---|---|---|---|---|\n")
    f.write("\n".join(rows) + "\n\n")
    f.write(f"median absolute error {100*statistics.median(errs):.1f}%, worst {100*max(errs):.1f}% (throughput and p99 together, {len(errs)} figures)\n")
    f.write(f"plan for 3 cores, measured: {p3:.1f} batches/s, {p3/d:.1f}× the default's {d:.1f} at the same 3 cores\n")
print(open(f"{out}/table.md").read())
PY
