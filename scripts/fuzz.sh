#!/usr/bin/env bash
# Fuzzes cnnc's readers with the libFuzzer harnesses of tests/fuzz.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]          fuzz each harness SECONDS (default 60)
#   scripts/fuzz.sh --replay [SECONDS] [HARNESS...] run every corpus input once, then fuzz
#                                                   each SECONDS (default 15); fail on a finding
# HARNESS is the NAME of tests/fuzz/fuzz_NAME.c (default: all). The corpora are
# tests/fuzz/corpus/NAME; new inputs and crash files go to $FUZZ_OUT/NAME
# (default build-fuzz/out), never into the repository. FUZZ_BUILD names the build
# folder (default build-fuzz), configured with clang-16 and -DCNNC_FUZZ=ON.
set -uo pipefail

cd "$(dirname "$0")/.."
replay=0
if [ "${1:-}" = --replay ]; then
  replay=1
  shift
fi
seconds=${1:-$([ $replay = 1 ] && echo 15 || echo 60)}
[ $# -gt 0 ] && shift
case "$seconds" in
  ''|*[!0-9]*) echo "usage: $0 [--replay] [SECONDS] [HARNESS...]" >&2; exit 2 ;;
esac
build=${FUZZ_BUILD:-build-fuzz}
out=${FUZZ_OUT:-$build/out}

harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do
    n=${f#tests/fuzz/fuzz_}
    harnesses+=("${n%.c}")
  done
fi

# Inputs long enough for deep nesting in the text formats; binary formats stay short.
max_len() {
  case "$1" in
    cnn|ir) echo 65536 ;;
    session) echo 16384 ;; # a graph printed before and after each line
    safetensors|gpu_image) echo 32768 ;;
    *) echo 4096 ;;
  esac
}

mkdir -p "$out"
cmake -S . -B "$build" -DCNNC_FUZZ=ON -DCMAKE_C_COMPILER=clang-16 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$out/configure.log" 2>&1 ||
  { cat "$out/configure.log"; exit 1; }
targets=()
for h in "${harnesses[@]}"; do targets+=(--target "fuzz_$h"); done
cmake --build "$build" -j"${JOBS:-$(nproc)}" "${targets[@]}" >"$out/build.log" 2>&1 ||
  { tail -n 40 "$out/build.log"; exit 1; }
rm -f "$out/configure.log" "$out/build.log"

# Leaks, inputs taking over 25 s and allocations over 2 GB are findings too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
failed=()
for h in "${harnesses[@]}"; do
  bin=$build/tests/fuzz/fuzz_$h
  seeds=tests/fuzz/corpus/$h
  dir=$out/$h
  mkdir -p "$dir/corpus"
  [ -d "$seeds" ] || seeds=$dir/corpus # a harness without seeds yet
  log=$dir/fuzz.log
  status=ok
  if [ $replay = 1 ]; then
    # Every input, crash reproducers included, once; after a failure, one at a
    # time to name each input that fails.
    if ! "$bin" -runs=0 -max_len="$(max_len "$h")" -artifact_prefix="$dir/" \
         "$seeds" >"$dir/replay.log" 2>&1; then
      status="FAILED replaying:"
      log=$dir/replay.log
      for f in "$seeds"/*; do
        "$bin" -artifact_prefix="$dir/" "$f" >"$dir/one.log" 2>&1 && continue
        status+=" $(basename "$f")"
        cp "$dir/one.log" "$log"
      done
    fi
  fi
  if [ "$status" = ok ]; then
    "$bin" -max_total_time="$seconds" -max_len="$(max_len "$h")" -len_control=0 -timeout=25 \
      -print_final_stats=1 -artifact_prefix="$dir/" "$dir/corpus" "$seeds" >"$log" 2>&1 ||
      status="FINDING"
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
  printf 'fuzz %-12s %10s runs %8s/s  %s%s\n' "$h" "${runs:-?}" "${rate:-?}" "$status" \
    "${crash:+ (input: $crash)}"
  if [ "$status" != ok ]; then
    failed+=("$h")
    grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | sed 's/^/  /'
    echo "  log: $log"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]}"
  exit 1
fi
