#!/usr/bin/env bash
# The driver when writing fails or target flags are wrong: a file-size limit
# (ulimit -f, the way a full disk fails a write) on every output path, a full
# device, LLVM's fatal errors, unknown --cpu and --features. Always status 1 and a
# clear message; never a signal, never an LLVM warning, never a file left behind
# (next to the output or in $TMPDIR).
set -u
cnnc=$1
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out scratch=$tmp/tmpdir
mkdir "$out" "$scratch"
pass=0 fail=0
mlp="models/mlp.cnn --random-weights=0"
mnist="models/mnist_cnn.cnn --random-weights=0"

check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}
empty() { [ -z "$(ls -A "$1")" ]; }

# expect LIMIT_KB STDERR_SUBSTRING -- ARGS...: status 1 under `ulimit -f LIMIT_KB`
# (0: none), the message, no LLVM noise, and nothing left in $out or $scratch.
expect() {
  local limit=$1 msg=$2; shift 3
  ( if [ "$limit" -gt 0 ]; then ulimit -f "$limit"; fi
    TMPDIR=$scratch exec "$cnnc" "$@" ) > "$tmp/stdout" 2> "$tmp/err"
  local rc=$?
  if [ $rc -ne 1 ] || ! grep -qF -- "$msg" "$tmp/err" ||
     grep -qE 'LLVM ERROR|not a recognized|ignoring' "$tmp/err"; then
    echo "FAIL: cnnc $* (ulimit -f $limit) -> status $rc (want 1), expected to see: $msg"
    sed 's/^/    /' "$tmp/err" | head -5
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
  check "cnnc $* left files: $(ls -A "$out" "$scratch" | tr '\n' ' ')" empty "$out"
  check "cnnc $* left files in TMPDIR" empty "$scratch"
  rm -rf "${out:?}"/* "${scratch:?}"/*
}

# Writes past the limit fail with EFBIG ("File too large"); cnnc ignores SIGXFSZ
# itself, so no `trap '' XFSZ` is needed. 8 KB is less than any of these outputs.
toolarge="File too large"
expect 8 "$toolarge" -- $mnist --emit=obj -o "$out/m.o"
expect 8 "$toolarge" -- $mnist --emit=asm -o "$out/m.s"
expect 8 "$toolarge" -- $mnist --emit=llvm -o "$out/m.ll"
expect 1 "$toolarge" -- $mnist --emit=ir-opt -o "$out/m.ir"
expect 1 "$toolarge" -- run $mlp -o "$out/y.npy" --batch=32
# -o model.so: the object code in $TMPDIR fails first ...
expect 2 "temporary object file '$scratch/cnnc-" -- $mnist -o "$out/m.so"
# ... with room for the code object, the linker's output fails ...
expect 64 "linking '$out/m.so' failed:" -- $mnist -o "$out/m.so"
# ... and with room for the linked code, the weights written into it.
"$cnnc" $mnist --emit=obj -o "$tmp/full.o" && "$cnnc" $mnist -o "$tmp/full.so"
o=$(stat -c %s "$tmp/full.o") so=$(stat -c %s "$tmp/full.so")
if [ "$so" -gt $((o + 2048)) ]; then
  expect $(((o + so) / 2 / 1024)) "cannot write '$out/m.so': $toolarge" -- $mnist -o "$out/m.so"
else
  echo "note: model.so ($so bytes) not larger than its object ($o); linker case skipped"
fi
# The REPL's :export links as cnnc -o does.
expect 2 "temporary object file '$scratch/cnnc-" -- repl $mnist -c ":export $out/m.so"
expect 64 "linking '$out/m.so' failed:" -- repl $mnist -c ":export $out/m.so"
# A full device, written in place.
expect 0 "/dev/full: cannot write: No space left on device" -- $mlp --emit=asm -o /dev/full
expect 0 "/dev/full: cannot write: No space left on device" -- $mlp --emit=obj -o /dev/full
( exec "$cnnc" $mlp --emit=ir > /dev/full 2> "$tmp/err" ); rc=$?
check "--emit=ir to a full standard output: status 1 (got $rc)" [ $rc -eq 1 ]
check "--emit=ir to a full standard output says so" \
  grep -qF "cannot write to standard output: No space left on device" "$tmp/err"

# Outputs that cannot be: a directory, a missing folder, a place nothing can be created.
expect 0 "-o '$out' is not a regular file" -- $mlp -o "$out"
expect 0 "$out: cannot write: Is a directory" -- $mlp --emit=obj -o "$out"
expect 0 "$out/no/such/m.o: cannot create a temporary file: No such file or directory" \
  -- $mlp --emit=obj -o "$out/no/such/m.o"
expect 0 "cannot write '$out/no/such/m.so'" -- $mlp -o "$out/no/such/m.so"
expect 0 "/proc/cnnc-test.so" -- $mlp -o /proc/cnnc-test.so
expect 0 "/proc/cnnc-test.s" -- $mlp --emit=asm -o /proc/cnnc-test.s

# --cpu and --features are checked against LLVM's own tables before LLVM sees them.
arch=$(uname -m)
expect 0 "unknown CPU 'nonexistent' for $arch; valid CPUs: " -- $mlp --cpu=nonexistent -o "$out/m.so"
expect 0 "unknown CPU '' for $arch" -- $mlp --cpu= --emit=asm
expect 0 "unknown CPU 'help'" -- $mlp --cpu=help --emit=obj -o "$out/m.o"
expect 0 "unknown feature 'foo' for $arch; valid features: " -- $mlp --features=+foo,-bar --emit=asm
expect 0 "--features: 'fma' is not +FEATURE or -FEATURE" -- $mlp --features=fma --emit=asm
expect 0 "--features: empty entry in '+fma,'" -- $mlp --features=+fma, --emit=asm
expect 0 "--features: empty entry in '+fma,,-fma'" -- $mlp --features=+fma,,-fma --emit=asm
expect 0 "unknown CPU 'nonexistent'" -- $mlp --cpu=nonexistent --emit=ir-opt
"$cnnc" repl $mlp --cpu=nonexistent -c ':quit' > "$tmp/stdout" 2> "$tmp/err"; rc=$?
check "repl --cpu=nonexistent: status 1 (got $rc)" [ $rc -eq 1 ]
check "repl --cpu=nonexistent says so" grep -qF "unknown CPU 'nonexistent'" "$tmp/err"
if [ "$arch" = x86_64 ]; then
  expect 0 "unknown CPU 'skylak' for x86_64; did you mean 'skylake'?" -- $mlp --cpu=skylak --emit=asm
  expect 0 "unknown feature 'fmaa' for x86_64; did you mean 'fma' or 'fma4'?" \
    -- $mlp --features=+avx2,-fmaa --emit=asm
  # Known names LLVM still cannot generate 64-bit code for: its fatal error, made ours.
  expect 0 "cnnc: error: LLVM: 64-bit code requested" -- $mlp --cpu=i386 -o "$out/m.so"
  expect 0 "cnnc: error: LLVM: 64-bit code requested" -- $mlp --features=-64bit --emit=obj -o "$out/m.o"
  "$cnnc" $mlp --cpu=x86-64-v3 --features=+avx2,-fma --emit=asm -o "$out/m.s" 2> "$tmp/err"; rc=$?
  check "known CPU and features: status 0 (got $rc)" [ $rc -eq 0 ]
  check "known CPU and features: nothing on stderr" [ ! -s "$tmp/err" ]
  rm -f "$out/m.s"
fi

# Odd optimization levels and GPU architectures are refused by the flag parser.
expect 0 "unknown option '-O4'" -- $mlp -O4 -o "$out/m.so"
expect 0 "unknown option '-O'" -- $mlp -O -o "$out/m.so"
expect 0 "--gpu-arch expects sm_70 .. sm_120" -- $mlp --emit=cuda --gpu-arch=sm_
expect 0 "--gpu-arch expects sm_70 .. sm_120" -- $mlp --emit=cuda --gpu-arch=sm_99999999999999999999
expect 0 "--gpu-arch expects sm_70 .. sm_120" -- $mlp --emit=cuda --gpu-arch=
expect 0 "--gpu-arch expects sm_70 .. sm_120" -- $mlp --emit=cuda --gpu-arch=sm_080

echo "command line errors: $pass passed, $fail failed"
[ $fail -eq 0 ]
