#!/usr/bin/env bash
# Regression gate for CI (docs/gate.md).
#
#   scripts/ci_gate.sh            gate; exit 0 pass, 1 regression, 2 bad input
#   scripts/ci_gate.sh --refresh  record this machine's baseline results/baseline/ci-<machine>.csv instead (commit it)
#
# A/B first: `run_bench.py gate --base-rev BASE --preset ci --threads 1 --resolutions 14 --max-run-s 0.1 --changed-only`
# measures BASE's variants and this checkout's whose code differs (their module or a module of
# attention_variants/ they import; identical code can only show noise), case by case in alternation on this machine, and
# judges each case from the paired rounds (a 95 % interval) and Callgrind's instruction counts. BASE is the revision at
# which the committed baselines (results/baseline/) last changed, i.e. the code whose speed was
# last accepted; when that is HEAD itself, HEAD's first parent. BENCH_CI_BASE_REV overrides it.
# Where no base can be checked out (not a git checkout, a shallow clone) or its harness cannot
# run the sweep (exit 2), it falls back to gating fresh runs against the committed baseline of
# this machine (the older, coarser gate below: only a 2x slowdown is sure to be caught there).
#
# Environment: PYTHON (default: python), BENCH_CI_BASE_REV, BENCH_CI_ROUNDS (default 6), BENCH_CI_AB_ARGS,
# BENCH_CI_AB_TOLERANCE (default: the CLI's), BENCH_CI_DIR (default results/ci),
# BENCH_SWEEP_ARGS (extra sweep flags); BENCH_CI_MODE=files skips the A/B gate (what
# scripts/false_alarms.py and scripts/detection.py study); for the file mode BENCH_CI_REPEATS
# (default 5) and BENCH_CI_TOLERANCE (default 0.75). On a shared machine, wrap it in `flock /tmp/bench.lock`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
TOLERANCE=${BENCH_CI_TOLERANCE:-0.75}
REPEATS=${BENCH_CI_REPEATS:-5}
DIR=${BENCH_CI_DIR:-results/ci}
BASELINES=results/baseline
mkdir -p "$DIR"

base_revision() {  # print the A/B base revision, or fail
    if [[ -n "${BENCH_CI_BASE_REV:-}" ]]; then echo "$BENCH_CI_BASE_REV"; return; fi
    local rev head
    rev=$(git log -1 --format=%H -- "$BASELINES" 2>/dev/null) && head=$(git rev-parse HEAD 2>/dev/null) || return 1
    [[ -n "$rev" ]] || return 1
    if [[ "$rev" == "$head" ]]; then rev=$(git rev-parse --verify --quiet HEAD~1) || return 1; fi
    echo "$rev"
}

if [[ "${1:-}" != "--refresh" && "${BENCH_CI_MODE:-ab}" != files ]]; then
    if BASE=$(base_revision); then
        status=0
        # shellcheck disable=SC2086  # BENCH_SWEEP_ARGS is a list of flags
        "$PYTHON" run_bench.py gate --base-rev "$BASE" --rounds "${BENCH_CI_ROUNDS:-6}" --ab-dir "$DIR/ab" \
            --markdown "$DIR/gate.md" ${BENCH_CI_AB_TOLERANCE:+--tolerance "$BENCH_CI_AB_TOLERANCE"} \
            ${BENCH_CI_AB_ARGS:---preset ci --threads 1 --resolutions 14 --max-run-s 0.1 --changed-only} ${BENCH_SWEEP_ARGS:-} || status=$?
        [[ $status -ne 2 ]] && exit $status
        echo "ci_gate: the A/B gate could not run (above); falling back to the committed baseline" >&2
    else
        echo "ci_gate: no base revision to check out (not a git checkout, or no baseline commit); falling back to the committed baseline" >&2
    fi
fi

# The fallback (and --refresh): run the `ci` preset REPEATS times into one CSV; the gate keeps, per
# case, the fastest run (the least disturbed) and compares it, normalised by im2col, with this
# machine's committed baseline at a wide tolerance that never failed on noise here.
OUT=$DIR/current.csv
[[ "${1:-}" == "--refresh" ]] && OUT=$DIR/baseline.csv  # moved over the baseline once complete
rm -f "$OUT"
for i in $(seq "$REPEATS"); do
    # shellcheck disable=SC2086  # BENCH_SWEEP_ARGS is a list of flags
    if ! "$PYTHON" run_bench.py --preset ci --threads 1 --no-plots --out "$OUT" ${BENCH_SWEEP_ARGS:-} > "$DIR/sweep-$i.log" 2>&1; then
        tail -n 20 "$DIR/sweep-$i.log" >&2
        echo "ci_gate: sweep $i of $REPEATS failed (log: $DIR/sweep-$i.log)" >&2
        exit 2
    fi
    echo "ci_gate: sweep $i of $REPEATS done -> $OUT"
done
if [[ "${1:-}" == "--refresh" ]]; then
    BASELINE=$BASELINES/$("$PYTHON" -c "import sys; from bench import results; from bench.analysis.gate import baseline_file_name; print(baseline_file_name(results.load(sys.argv[1])))" "$OUT")
    mv "$OUT" "$BASELINE"
    echo "ci_gate: baseline refreshed: $BASELINE (commit it)"
    exit 0
fi
exec "$PYTHON" run_bench.py gate --baseline "$BASELINES" --current "$OUT" --tolerance "$TOLERANCE" --markdown "$DIR/gate.md"
