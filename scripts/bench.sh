#!/usr/bin/env bash
# Runs the benchmarks and summarizes them:
#  1. benches/core.rs (criterion, about a minute): CPU time of concealment and playout per 10 ms
#     of audio, then a table of each median as a share of the 10 ms real-time budget on one core;
#  2. benches/placement.rs: the placement simulation (10 minutes of simulated audio per
#     network condition), which prints its own table.
#   scripts/bench.sh [criterion filter, e.g. conceal]
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
criterion_home=${CRITERION_HOME:-$target/criterion}
# Results written after this marker are this run's (older ones may be from renamed benches).
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT

echo "== cargo bench --bench core"
cargo bench --locked --bench core -- "$@"

echo
echo "== Median CPU time per 10 ms of audio, as a share of the 10 ms real-time budget (one core)"
python3 - "$criterion_home" "$marker" <<'EOF'
import json, os, sys

home, marker = sys.argv[1], sys.argv[2]
since = os.path.getmtime(marker)
rows = []
for root, _dirs, files in os.walk(home):
    if os.path.basename(root) != "new" or "estimates.json" not in files:
        continue
    est_path = os.path.join(root, "estimates.json")
    mtime = os.path.getmtime(est_path)
    if mtime < since:
        continue
    with open(est_path) as f:
        est = json.load(f)
    with open(os.path.join(root, "benchmark.json")) as f:
        name = json.load(f)["full_id"]
    median = est["median"]["point_estimate"]
    ci = est["median"]["confidence_interval"]
    rows.append((mtime, name, median, ci["lower_bound"], ci["upper_bound"]))

if not rows:
    sys.exit(f"bench.sh: no new criterion results under {home}")

def fmt(ns):
    for unit, scale in (("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.1f} ns"

budget = 10e6
width = max(len(r[1]) for r in rows)
print(f"{'measurement':<{width}}  {'median':>10}  {'95 % CI':>21}  {'% of 10 ms':>10}")
for _, name, median, lo, hi in sorted(rows):
    ci = f"{fmt(lo)}..{fmt(hi)}"
    print(f"{name:<{width}}  {fmt(median):>10}  {ci:>21}  {100 * median / budget:>9.4f}%")
EOF

echo
echo "== cargo bench --bench placement"
cargo bench --locked --bench placement
