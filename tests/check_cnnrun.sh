#!/usr/bin/env bash
# cnnrun against the hand-written model of tests/runtime (x [2,3,4], y [2,5] ->
# x+1, 2y, meta): flags, errors, .npy in and out, --bench and --top output.
set -u
cnnrun=$1
model=$2
badabi_model=$3 # the same model built for another runtime ABI
badsum_model=$4 # the same model with a wrong checksum of its weights
cd "$(dirname "$0")/.." || exit 1
data=tests/runtime
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

# expect STATUS SUBSTRING -- ARGS...: the status, and SUBSTRING in stdout or stderr.
expect() {
  local want=$1 msg=$2; shift 3
  "$cnnrun" "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  if [ $rc -ne "$want" ] || { [ -n "$msg" ] && ! grep -qF -- "$msg" "$tmp/err" "$tmp/out"; }; then
    echo "FAIL: cnnrun $* -> status $rc (want $want), expected to see: $msg"
    sed 's/^/    /' "$tmp/err" "$tmp/out" | head -8
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}

check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}

expect 0 "usage: cnnrun" -- --help
expect 1 "cnnrun: error: no model given" --
expect 1 "cnnrun: error: unknown option '--frobnicate'" -- "$model" --frobnicate
expect 1 "cnnrun: error: option '--threads' needs a value" -- "$model" --threads
expect 1 "cnnrun: error: --threads expects an integer in [0, 1024], got '-1'" -- "$model" --threads -1
expect 1 "cnnrun: error: --bench expects an integer in [1, 100000000], got '0'" -- "$model" --bench 0
expect 1 "cnnrun: error: --top expects an integer" -- "$model" --top=x
expect 1 "cnnrun: error: --seed expects a non-negative integer, got '1.5'" -- "$model" --seed 1.5
expect 1 "cnnrun: error: --warmup needs --bench" -- "$model" --warmup 2
expect 1 "cnnrun: error: unexpected argument 'extra'" -- "$model" extra
expect 1 "cnnrun: error: cannot load the model" -- "$tmp/no_such_model.so"
expect 1 "cnnrun: error: cannot load the model" -- "$data/x.npy"
expect 1 "cnnrun: error: cannot create the model: incompatible version" -- "$badabi_model"
expect 1 "is not a cnnc model" -- "$(ldd "$cnnrun" | awk '/libc\.so/ {print $3}')"

# --verify: the weights against their checksum, before the run.
expect 0 "weights: checksum verified" -- "$model" --verify
check "verified, then run" grep -q "^meta: f32\[2\]" "$tmp/out"
expect 1 "cnnrun: error: $badsum_model: cannot verify the weights: the model's weights are damaged (the 32 bytes of weights hash to 4cc383ba0a198998 (XXH64), cnnc stored 0123456789abcdef)" \
  -- "$badsum_model" --verify
expect 0 "meta: f32[2]" -- "$badsum_model"

# A damaged model.so is refused before dlopen maps it (a truncated one would die of SIGBUS).
size=$(stat -c %s "$model")
head -c 100 "$model" > "$tmp/t100.so"
expect 1 "cnnrun: error: $tmp/t100.so: truncated: its program headers need" -- "$tmp/t100.so"
head -c 4096 "$model" > "$tmp/t4096.so"
expect 1 "cnnrun: error: $tmp/t4096.so: truncated: its loadable segment" -- "$tmp/t4096.so"
head -c $((size - 1)) "$model" > "$tmp/short.so"
expect 1 "cnnrun: error: $tmp/short.so: truncated: its section headers need $size bytes, the file has $((size - 1))" \
  -- "$tmp/short.so"
cp "$model" "$tmp/class.so"
printf '\001' | dd of="$tmp/class.so" bs=1 seek=4 conv=notrunc status=none
expect 1 "cnnrun: error: $tmp/class.so: built for another machine (ELF class 1" -- "$tmp/class.so"

# Inputs: every input needs a file once any is given; names and shapes are checked.
expect 1 "cnnrun: error: no input file for input 'y'" -- "$model" x="$data/x.npy"
expect 1 "cnnrun: error: input file '$data/x.npy' needs a name: the model has 2 inputs (NAME=FILE)" \
  -- "$model" --input "$data/x.npy" y="$data/y.npy"
expect 1 "cnnrun: error: the model has no input named 'z'" -- "$model" z="$data/x.npy" y="$data/y.npy"
expect 1 "cnnrun: error: the model has no input named 'xx'" -- "$model" xx="$data/x.npy" y="$data/y.npy"
expect 1 "cnnrun: error: input 'x' expects f32[2,3,4], got f32[3,4,2] from '$data/x_bad_shape.npy'" \
  -- "$model" x="$data/x_bad_shape.npy" y="$data/y.npy"
expect 1 "no_such.npy" -- "$model" x="$tmp/no_such.npy" y="$data/y.npy"
expect 1 "3 input files for 2 input(s)" -- "$model" x="$data/x.npy" y="$data/y.npy" z="$data/y.npy"

# Summaries of the outputs of known inputs; NAME=FILE positional or with --input.
expect 0 "x_plus_one: f32[2,3,4]  min -2  max 11  mean" -- "$model" x="$data/x.npy" --input=y="$data/y.npy"
expect 0 "y_times_two: f32[2,5]  min -9  max 9  mean 0  argmax 9" -- "$model" x="$data/x.npy" y="$data/y.npy"
expect 0 "meta: f32[2]  min 1  max 3" -- "$model" --threads 3
expect 0 "  first values: -2 -1.5 -1 -0.5 0 0.5 1 1.5" -- "$model" x="$data/x.npy" y="$data/y.npy"

# An input read from a pipe (no size to check up front): read to its end.
"$cnnrun" "$model" x=/dev/stdin y="$data/y.npy" < <(cat "$data/x.npy") > "$tmp/out" 2>&1
check "input from a pipe" grep -qF "x_plus_one: f32[2,3,4]  min -2  max 11" "$tmp/out"
"$cnnrun" "$model" x=/dev/stdin y="$data/y.npy" < <(head -c -4 "$data/x.npy") > "$tmp/out" 2>&1
check "short input from a pipe" grep -qF "cnnrun: error: /dev/stdin: file holds 92 bytes of data, shape needs 96" "$tmp/out"

# --top: per batch item of the first output, largest first.
expect 0 "x_plus_one[0] top-3: 11 (3.5), 10 (3), 9 (2.5)" -- "$model" x="$data/x.npy" y="$data/y.npy" --top 3
expect 0 "x_plus_one[1] top-3: 6 (11), 11 (9.5), 10 (9)" -- "$model" x="$data/x.npy" y="$data/y.npy" --top 3
expect 0 "x_plus_one[1] top-12:" -- "$model" --top 50

# --bench: the report's three lines.
expect 0 "" -- "$model" --bench 20 --warmup 2 --threads 2
check "bench header" grep -qE '^bench: 20 runs after 2 warm-up, 2 threads, batch 2$' "$tmp/out"
check "bench latency" grep -qE '^latency: median [0-9]+\.[0-9]{3} ms  p90 [0-9]+\.[0-9]{3} ms  min [0-9.]+ ms  max [0-9.]+ ms$' "$tmp/out"
check "bench throughput" grep -qE '^throughput: [0-9]+\.[0-9] runs/s  [0-9]+\.[0-9] items/s$' "$tmp/out"

# --profile: the bench report, then one row per kernel in execution order and the total.
expect 0 "" -- "$model" --profile --threads 2
check "profile header" grep -qE '^bench: 20 runs after 1 warm-up, 2 threads, batch 2, profiling on$' "$tmp/out"
check "profile columns" grep -qE '^ +# +kernel +op +ms/run +share +GFLOP/s$' "$tmp/out"
row='[0-9]+\.[0-9]{4} +[0-9]+\.[0-9]%'
check "profile rows in order" bash -c "grep -E '^ +[0-9]+  ' '$tmp/out' | awk '{print \$1, \$2, \$3}' |
  tr '\n' ';' | grep -qx '0 plus mul+add;1 copy mul+add;2 twice mul;'"
check "profile row" grep -qE "^ +0  plus +mul\+add +$row +[0-9]+\.[0-9]{2}$" "$tmp/out"
check "profile total" grep -qE '^total: kernels [0-9.]+ ms/run, run [0-9.]+ ms/run \(kernels [0-9.]+%\), [0-9.]+ GFLOP/run, [0-9.]+ GFLOP/s$' "$tmp/out"
awk '/^ +[0-9]+  / {s += $5} END {exit !(s > 99 && s < 101)}' "$tmp/out"
check "profile shares add up to 100%" test $? -eq 0
expect 0 "bench: 3 runs after 0 warm-up" -- "$model" --profile-sort=time --bench 3 --warmup 0
check "sorted by time" bash -c "grep -E '^ +[0-9]+  ' '$tmp/out' | awk '{print \$4}' | sort -rn -c"
expect 1 "cnnrun: error: --profile-sort expects 'time', got 'name'" -- "$model" --profile-sort=name

# A bare file name means the file in the current folder, not a library search.
(cd "$(dirname "$model")" && "$cnnrun" "$(basename "$model")" > "$tmp/out" 2>&1)
check "model given by a bare file name" grep -q "^meta: f32\[2\]" "$tmp/out"

# Random inputs are deterministic per seed; outputs are written as .npy.
expect 0 "" -- "$model" --seed 7 --output "$tmp/a.npy"
for name in x_plus_one y_times_two meta; do
  check "$name written" test -s "$tmp/a.$name.npy"
done
expect 0 "" -- "$model" --seed 7 -o "$tmp/b.npy"
expect 0 "" -- "$model" --seed 8 -o "$tmp/c.npy"
check "same seed, same output" cmp -s "$tmp/a.x_plus_one.npy" "$tmp/b.x_plus_one.npy"
check "other seed, other output" bash -c "! cmp -s '$tmp/a.x_plus_one.npy' '$tmp/c.x_plus_one.npy'"
expect 0 "" -- "$model" x="$data/x.npy" y="$data/y.npy" -o "$tmp/d.npy"
expect 0 "x_plus_one: f32[2,3,4]  min -1  max 12" -- "$model" x="$tmp/d.x_plus_one.npy" y="$data/y.npy"
expect 1 "out.x_plus_one.npy: cannot create a temporary file" -- "$model" -o "$tmp/no/such/dir/out.npy"

echo "cnnrun: $pass passed, $fail failed"
[ $fail -eq 0 ]
