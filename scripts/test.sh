#!/usr/bin/env bash
# Runs the compiled suite (dist/test) in two mocha runs: first the files that can share the machine, two at a
# time (--parallel, one worker per core), then, one after another, the files that must have it to
# themselves. Usage: scripts/test.sh [unit]   (unit: the unit tests only, in parallel, fewer property runs)
# Exits non-zero when either run fails; both always run.
set -uo pipefail
cd "$(dirname "$0")/.."

# Run alone, and why:
serial=(
  # CPU budgets: they measure what a throttled, paused or resumed command gets against a control measured
  # in the same run; a neighbour test burning the other core only makes that noisier.
  dist/test/integration/agent/budget-agent.test.js
  dist/test/integration/agent/budget-control-e2e.test.js
  dist/test/integration/common/backup-run/budget-enforcement.test.js
  dist/test/integration/host-backup/host-backup-budget.test.js
  # Bounds on what the coordinator's heap grows by and on its deadlines while fuzzed.
  dist/test/integration/hostile/hostile-input.test.js
  # Builds dist/bin/headroom-agent, a fixed path, with esbuild and postject (both cores for a while).
  dist/test/integration/agent/single-executable.test.js
)
mocha=(node_modules/.bin/mocha --no-config --timeout 20000 --enable-source-maps)

if [ "${1:-}" = unit ]; then
  # The fast tier: a quarter of each property's full run count, unless told otherwise; `npm test` runs them all.
  HEADROOM_PROPERTY_SCALE=${HEADROOM_PROPERTY_SCALE:-0.25} exec "${mocha[@]}" --parallel --jobs 2 'dist/test/unit/**/*.test.js'
fi

ignore=()
for f in "${serial[@]}"; do ignore+=(--ignore "$f"); done
status=0
"${mocha[@]}" --parallel --jobs 2 "${ignore[@]}" 'dist/test/**/*.test.js' || status=$?
"${mocha[@]}" "${serial[@]}" || status=$?
exit "$status"
