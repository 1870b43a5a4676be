#!/usr/bin/env bash
# The sanitizer and fuzzing runs (issue #14 item 5), in build-san/ with
# Debian's clang: every library with AddressSanitizer + UndefinedBehavior-
# Sanitizer (a finding aborts) and libFuzzer coverage.
#
#   scripts/sanitize.sh unit   build and run the unit tests under ASan+UBSan
#   scripts/sanitize.sh fuzz   build the fuzzers; replay each one's
#                              regressions (tests/fuzz/regressions/NAME),
#                              then fuzz it for FUZZ_SECONDS (default 30)
#                              over a copy of tests/fuzz/corpus/NAME
#
# The fuzz report (executions per second, coverage, corpus size, findings)
# is written to build-san/fuzz-report.md. A crash fails the run and leaves
# the input in build-san/fuzz-findings/NAME/: fix it and copy the file into
# tests/fuzz/regressions/NAME/, so it is replayed from then on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=${1:?usage: scripts/sanitize.sh unit|fuzz}
BUILD=${SAN_BUILD_DIR:-build-san}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

configure() {
  if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    echo "sanitize: configuring $BUILD/ (clang, ASan+UBSan, libFuzzer)"
    CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
      -DRECONCILE_SANITIZE=ON -DRECONCILE_FUZZ=ON >/dev/null
  fi
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Leaks inside system libraries, each explained in the file.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitize/lsan.supp:print_suppressions=0}

case $mode in
  unit)
    configure
    cmake --build "$BUILD" -j"$JOBS" --target reconcile_unit_tests
    echo "sanitize: unit tests under ASan+UBSan"
    "$BUILD"/tests/reconcile_unit_tests
    ;;
  fuzz)
    configure
    cmake --build "$BUILD" -j"$JOBS" --target fuzzers
    report=$BUILD/fuzz-report.md
    findings=$BUILD/fuzz-findings
    rm -rf "$findings"
    {
      echo "| fuzzer | seconds | executions | exec/s | coverage (edges) | features | corpus (seed → end) | findings |"
      echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    } >"$report"
    failed=0
    for bin in "$BUILD"/tests/fuzz/*_fuzz; do
      name=$(basename "$bin")
      seeds=tests/fuzz/corpus/$name
      regressions=tests/fuzz/regressions/$name
      if [[ ! -d $seeds ]] || [[ -z "$(ls -A "$seeds")" ]]; then
        echo "sanitize: $name has no seed corpus in $seeds" >&2
        exit 1
      fi
      if [[ -d $regressions ]] && [[ -n "$(ls -A "$regressions")" ]]; then
        echo "sanitize: $name: replaying $(ls "$regressions" | wc -l) regression input(s)"
        "$bin" "$regressions"/* >"$BUILD/$name.regressions.log" 2>&1 || {
          echo "sanitize: $name fails on a regression input:" >&2
          tail -40 "$BUILD/$name.regressions.log" >&2
          exit 1
        }
      fi
      work=$(mktemp -d)
      mkdir -p "$findings/$name"
      log=$BUILD/$name.log
      echo "sanitize: fuzzing $name for ${FUZZ_SECONDS}s ($(ls "$seeds" | wc -l) seeds)"
      rc=0
      "$bin" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$findings/$name/" "$work" "$seeds" >"$log" 2>&1 || rc=$?
      execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
      rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
      cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
      ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | awk '{print $2}')
      end_corpus=$(( $(ls "$work" | wc -l) + $(ls "$seeds" | wc -l) ))
      found=$(ls "$findings/$name" | wc -l)
      echo "| $name | $FUZZ_SECONDS | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $(ls "$seeds" | wc -l) → $end_corpus | $found |" >>"$report"
      rm -rf "$work"
      if [[ $rc -ne 0 ]] || [[ $found -ne 0 ]]; then
        echo "sanitize: $name found a crash (exit $rc); input in $findings/$name/:" >&2
        grep -A30 -m1 'ERROR\|==ERROR\|runtime error\|invariant broken\|deadly signal' "$log" >&2 || tail -40 "$log" >&2
        failed=1
      fi
    done
    cat "$report"
    exit $failed
    ;;
  *)
    echo "usage: scripts/sanitize.sh unit|fuzz" >&2
    exit 2
    ;;
esac
