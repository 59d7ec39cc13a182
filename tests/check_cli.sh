#!/usr/bin/env bash
# The driver's command line: good runs, bad flags, determinism, output files.
set -u
cnnc=$1
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

# expect STATUS STDERR_SUBSTRING -- ARGS...
expect() {
  local want=$1 msg=$2; shift 3
  "$cnnc" "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  if [ $rc -ne "$want" ] || { [ -n "$msg" ] && ! grep -qF -- "$msg" "$tmp/err" "$tmp/out"; }; then
    echo "FAIL: cnnc $* -> status $rc (want $want), expected to see: $msg"
    sed 's/^/    /' "$tmp/err" | head -5
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}

expect 0 "usage: cnnc" -- --help
expect 0 "cnnc 0." -- --version
expect 1 "no model file" --
expect 1 "unknown option '--frobnicate'" -- models/mlp.cnn --frobnicate
expect 1 "unknown --emit kind 'llvm-bitcode'" -- models/mlp.cnn --emit=llvm-bitcode
expect 1 "--batch expects a positive integer, got '0'" -- models/mlp.cnn --emit=ir --batch=0
expect 1 "--batch expects a positive integer, got 'x'" -- models/mlp.cnn --emit=ir --batch=x
expect 1 "option '--batch' needs a value" -- models/mlp.cnn --emit=ir --batch
expect 1 "more than one model file" -- models/mlp.cnn models/mnist_cnn.cnn --emit=ir
expect 1 "nothing to do" -- models/mlp.cnn
expect 1 "no_such_model.cnn" -- no_such_model.cnn --emit=ir
expect 1 "--weights and --random-weights exclude each other" -- run models/mlp.cnn --weights=a --random-weights=1
expect 1 "--seed is an option of 'cnnc run'" -- models/mlp.cnn --emit=ir --seed=1
expect 1 "no_such_weights.safetensors" -- run models/mlp.cnn --weights=no_such_weights.safetensors
expect 1 "no_such_input.npy" -- run models/mlp.cnn --input=no_such_input.npy
expect 0 "f32[4,10]" -- models/mlp.cnn --emit=ir --batch=4
expect 0 "digraph" -- models/resnet18.cnn --emit=dot

# run: deterministic output, written as .npy; a wrong input shape is rejected.
expect 0 "" -- run models/resnet18.cnn -o "$tmp/a.npy"
expect 0 "" -- run models/resnet18.cnn -o "$tmp/b.npy"
if cmp -s "$tmp/a.npy" "$tmp/b.npy"; then pass=$((pass + 1)); else
  echo "FAIL: cnnc run is not deterministic"; fail=$((fail + 1)); fi
expect 0 "fc: f32[1,1000]" -- run models/resnet18.cnn --seed=3
expect 1 "input 'image' expects f32[1,1,28,28], got f32[1,1000]" -- run models/mnist_cnn.cnn --input="$tmp/a.npy"
expect 0 "" -- run models/mnist_cnn.cnn --seed=1 -o "$tmp/m.npy"
expect 1 "cannot write" -- models/mlp.cnn --emit=ir -o "$tmp/no/such/dir/out.ir"
if ls "$tmp"/no 2>/dev/null | grep -q .; then echo "FAIL: partial output left"; fail=$((fail + 1)); fi

echo "command line: $pass passed, $fail failed"
[ $fail -eq 0 ]
