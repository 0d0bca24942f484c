#!/usr/bin/env bash
# CI's engine suites in two lanes at once, on engines that share nothing but the registry: lane A on docker 26, lane B on
# docker 20.10; buildah, daemonless, has its engine suite in lane A and its fault suite in lane B (the fault suite runs each
# pushed image on an emptied docker of its own lane). With buildah's both suites in lane B, lane B ended 25 minutes after lane A
# on a slow machine, one core idle meanwhile. Each lane runs the engine suite (jest) and then the fault suite's repository
# faults for its engines; the registry outages (the whole registry down, under every lane's builds) run after both, alone; then
# cross-lane.ts checks what no lane can check alone (the same pushed configuration from every strategy, every fault case
# run exactly once) and prints the fault suite's report over all of them.
# Run after engines.sh up (with-engines.sh does both: `npm run test:lanes`). Exits 1 if any part failed, after all ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
export CIB_RESULTS_DIR=$results

# lane NAME SUITE_ENGINES FAULT_ENGINES: one lane's suites, each line of their output prefixed with the lane's name.
lane() {
  local name=$1 suite=$2 faults=$3 status=0 t0=$SECONDS
  export CIB_LANE=$name
  # --verbose: every test with its seconds, what the next rebalancing of the lanes needs.
  CIB_LANE_ENGINES=$suite npx jest -c jest.integration.config.js --verbose || status=1
  echo "lane $name: engine suite ($suite) done at $((SECONDS - t0)) s, status $status"
  CIB_LANE_ENGINES=$faults FAULTS_CASES=repository npx ts-node --transpile-only test/integration/faults.ts || status=1
  echo "lane $name: fault suite ($faults) done at $((SECONDS - t0)) s, status $status"
  return "$status"
}

# Each lane's engines: for the engine suite, then for the fault suite.
suite_a='d26 buildah' faults_a=d26
suite_b=d20 faults_b='d20 buildah'
# Every engine that started is in exactly one lane of each suite: a test of an engine in no lane would be skipped in both.
# shellcheck source=/dev/null
started=$(. test/integration/.engines.env && echo "${CIB_ENGINES:-}")
for engine in $started; do
  for which in suite faults; do
    la=${which}_a lb=${which}_b n=0
    for e in ${!la} ${!lb}; do [[ $e != "$engine" ]] || n=$((n + 1)); done
    [[ $n -eq 1 ]] || { echo "lanes.sh: engine $engine is in $n lanes' $which, not 1 (A: ${!la}; B: ${!lb})" >&2; exit 1; }
  done
done

t0=$SECONDS
(lane A "$suite_a" "$faults_a" 2>&1 | sed -u 's/^/[lane A] /'; exit "${PIPESTATUS[0]}") &
a=$!
(lane B "$suite_b" "$faults_b" 2>&1 | sed -u 's/^/[lane B] /'; exit "${PIPESTATUS[0]}") &
b=$!
status=0
wait "$a" || status=1
wait "$b" || status=1
echo "lanes: both done at $((SECONDS - t0)) s"

# The registry outages, alone: every strategy on every engine.
FAULTS_CASES=registry npx ts-node --transpile-only test/integration/faults.ts || status=1
echo "lanes: registry outages done at $((SECONDS - t0)) s"

npx ts-node --transpile-only test/integration/cross-lane.ts || status=1
exit "$status"
