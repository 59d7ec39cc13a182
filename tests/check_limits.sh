#!/usr/bin/env bash
# cnnc under resource limits: 2 GB of address space (ulimit -v) and a stack of
# 1 MB, then 256 KB (ulimit -s). Every zoo model (--emit=ir, and a compile of
# the small ones), every tests/bad input, a model whose weights do not fit and
# models nested as deeply as the language allows, or deeper, must end with
# status 0 or 1 (an error message for 1), never with a signal.
# Skipped (77) for a sanitizer build, whose shadow memory needs more than 2 GB.
set -u
cnnc=$1
cd "$(dirname "$0")/.." || exit 1
if ldd "$cnnc" 2>/dev/null | grep -q -E 'lib(asan|ubsan)'; then
  echo "check_limits: skipped (sanitizer build)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
vmem_kb=2000000
pass=0 fail=0

# run STACK_KB WANT(0|1|any) ARGS...: one cnnc run under the limits.
run() {
  local stack=$1 want=$2 rc
  shift 2
  (ulimit -v $vmem_kb && ulimit -s "$stack" && exec timeout 300 "$cnnc" "$@") \
    >"$tmp/out" 2>"$tmp/err"
  rc=$?
  local problem=""
  if [ $rc -ge 124 ]; then
    problem="status $rc (signal or timeout)"
  elif [ $rc -gt 1 ] || { [ "$want" != any ] && [ $rc -ne "$want" ]; }; then
    problem="status $rc, expected $want"
  elif [ $rc -eq 1 ] && ! grep -q "error" "$tmp/err"; then
    problem="status 1 without an error message"
  fi
  if [ -n "$problem" ]; then
    echo "FAIL (stack ${stack} KB) cnnc $*: $problem"
    tail -n 3 "$tmp/err" | sed 's/^/  /'
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}

printf 'network big(x: f32[1, 10000]) {\n  return dense(x, 60000) as fc\n}\n' >"$tmp/big.cnn"
# nested N OPEN CLOSE INNER: a network returning INNER wrapped N times.
nested() {
  printf 'network deep(x: f32[1, 4]) {\n  return '
  for ((i = 0; i < $1; i++)); do printf '%s' "$2"; done
  printf '%s' "$4"
  for ((i = 0; i < $1; i++)); do printf '%s' "$3"; done
  printf '\n}\n'
}
nested 490 'relu(' ')' x >"$tmp/deep_calls.cnn"
nested 5000 'relu(' ')' x >"$tmp/deeper_calls.cnn"
nested 100000 '(' ')' x >"$tmp/deep_parens.cnn"
for stack in 1024 256; do
  for m in models/*.cnn; do
    run $stack 0 "$m" --emit=ir -o "$tmp/m.ir"
  done
  for m in mlp mnist_cnn; do
    run $stack 0 "models/$m.cnn" --random-weights=1 -o "$tmp/$m.so"
  done
  for src in tests/bad/*.cnn; do
    args=()
    [ -f "${src%.cnn}.args" ] && read -r -a args <"${src%.cnn}.args"
    run $stack any "$src" --emit=ir "${args[@]}" -o "$tmp/bad.ir"
  done
  for m in deep_calls deeper_calls deep_parens; do
    run $stack any "$tmp/$m.cnn" --emit=ir -o "$tmp/deep.ir"
  done
  # 2.4 GB of weights: out of memory is an error like any other.
  run $stack 1 "$tmp/big.cnn" --random-weights=1 -o "$tmp/big.so"
  run $stack 1 run "$tmp/big.cnn"
done
echo "resource limits: $pass passed, $fail failed"
[ $fail -eq 0 ]
