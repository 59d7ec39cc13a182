#!/usr/bin/env bash
# The driver's command line: good runs, bad flags, determinism, output files.
set -u
cnnc=$1
cnnrun=${2:-} # to run what was compiled (optional)
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
# -o - is standard output for text and objects, never a file named "-".
root=$PWD
cd "$tmp" || exit 1
expect 0 "target triple" -- "$root/models/mlp.cnn" --random-weights=0 --emit=llvm -o -
cd "$root" || exit 1
if [ -e "$tmp/-" ]; then echo "FAIL: -o - wrote a file named '-'"; fail=$((fail + 1)); fi
expect 1 "-o -: a model.so cannot go to standard output" -- models/mlp.cnn --random-weights=0 -o -
expect 1 "-o -: an .npy output cannot go to standard output" -- run models/mlp.cnn -o -

# run: deterministic output, written as .npy; a wrong input shape is rejected.
# (ResNet-18's run is checked by the slow test resnet18_run.)
expect 0 "" -- run models/mnist_cnn.cnn -o "$tmp/a.npy"
expect 0 "" -- run models/mnist_cnn.cnn -o "$tmp/b.npy"
if cmp -s "$tmp/a.npy" "$tmp/b.npy"; then pass=$((pass + 1)); else
  echo "FAIL: cnnc run is not deterministic"; fail=$((fail + 1)); fi
expect 0 "fc2: f32[1,10]" -- run models/mnist_cnn.cnn --seed=3
expect 0 "fc3: f32[2,10]" -- run models/mlp.cnn --batch=2
expect 1 "input 'image' expects f32[1,1,28,28], got f32[1,10]" -- run models/mnist_cnn.cnn --input="$tmp/a.npy"
expect 1 "--input is an option of 'cnnc run'" -- models/mlp.cnn --emit=ir --input=x.npy
expect 1 "out.ir: cannot create a temporary file: No such file" -- models/mlp.cnn --emit=ir -o "$tmp/no/such/dir/out.ir"
if ls "$tmp"/no 2>/dev/null | grep -q .; then echo "FAIL: partial output left"; fail=$((fail + 1)); fi

# Compiling to model.so: weights required, deterministic, self-contained, only the API exported.
expect 1 "model has parameters; give --weights=FILE or --random-weights=SEED" -- models/mlp.cnn -o "$tmp/m.so"
if [ -e "$tmp/m.so" ]; then echo "FAIL: .so written without weights"; fail=$((fail + 1)); fi
expect 0 "" -- models/mnist_cnn.cnn --random-weights=0 -o "$tmp/a.so"
expect 0 "" -- models/mnist_cnn.cnn --random-weights=0 -o "$tmp/b.so"
if cmp -s "$tmp/a.so" "$tmp/b.so"; then pass=$((pass + 1)); else
  echo "FAIL: model.so is not byte-identical across builds"; fail=$((fail + 1)); fi
deps=$(ldd "$tmp/a.so" | awk '{print $1}' | grep -Ev '^(linux-vdso|/lib64/ld-linux|libc\.so|libm\.so|libpthread\.so|libdl\.so)' || true)
if [ -z "$deps" ]; then pass=$((pass + 1)); else
  echo "FAIL: model.so depends on: $deps"; fail=$((fail + 1)); fi
exported=$(nm -D --defined-only "$tmp/a.so" | awk '{print $3}' | grep -v '^cnn_' || true)
if [ -z "$exported" ]; then pass=$((pass + 1)); else
  echo "FAIL: model.so exports: $exported"; fail=$((fail + 1)); fi
# The weights are written into the linked file in place: the last loadable segment
# holds file bytes for all of its memory, none of it left for the loader to zero.
# strip keeps them, and the stripped model computes the same values.
last_load=$(readelf -lW "$tmp/a.so" | awk '$1 == "LOAD" {f = $5; m = $6} END {print f, m}')
if [ -n "$last_load" ] && [ "${last_load% *}" = "${last_load#* }" ]; then pass=$((pass + 1)); else
  echo "FAIL: the last segment's file bytes do not cover its memory: $last_load"; fail=$((fail + 1)); fi
if [ -n "$cnnrun" ] && strip -o "$tmp/s.so" "$tmp/a.so"; then
  "$cnnrun" "$tmp/a.so" --output "$tmp/a.npy" > /dev/null 2>&1
  "$cnnrun" "$tmp/s.so" --verify --output "$tmp/s.npy" > "$tmp/out" 2>&1
  if grep -q "checksum verified" "$tmp/out" && cmp -s "$tmp/a.npy" "$tmp/s.npy"; then
    pass=$((pass + 1))
  else
    echo "FAIL: the stripped model.so differs"; sed 's/^/    /' "$tmp/out" | head -5; fail=$((fail + 1))
  fi
fi
if ls "$tmp" | grep -q 'tmp-'; then echo "FAIL: temporary files left"; fail=$((fail + 1)); fi
expect 1 "unknown pass 'nosuch' (passes: channels_first, lower, simplify" -- models/mlp.cnn --random-weights=0 --disable-pass=nosuch -o "$tmp/x.so"
expect 1 "--dump-after: unknown pass 'nosuch'" -- models/mlp.cnn --random-weights=0 --dump-after=nosuch -o "$tmp/x.so"
expect 1 "pass 'layout' is required" -- models/mlp.cnn --random-weights=0 --disable-pass=layout -o "$tmp/x.so"
expect 1 "chosen when the model runs" -- models/mlp.cnn --random-weights=0 --threads=4 -o "$tmp/x.so"
expect 0 "" -- models/mlp.cnn --random-weights=0 --disable-pass=fuse --disable-pass=fold_bn -O0 -o "$tmp/c.so"
expect 0 "conv2d" -- models/mnist_cnn.cnn --random-weights=0 --dump-after=fuse -O1 -o "$tmp/d.so"
expect 0 "@nchw8c" -- models/mnist_cnn.cnn --random-weights=0 --cpu=x86-64-v3 --emit=ir-opt
expect 0 "define internal void @run" -- models/mlp.cnn --random-weights=0 --emit=llvm
expect 0 "cnnc_model" -- models/mlp.cnn --random-weights=0 --emit=asm -O3 --features=+avx2
expect 0 "" -- models/mlp.cnn --random-weights=0 --emit=obj -o "$tmp/m.o"
if [ -s "$tmp/m.o" ]; then pass=$((pass + 1)); else echo "FAIL: no object file"; fail=$((fail + 1)); fi
# The object stands alone (its weights inside); LLVM IR shows them as the external blob.
if nm "$tmp/m.o" | grep -q '^[0-9a-f]* [rRdDbB] cnnc_weights$'; then pass=$((pass + 1))
else echo "FAIL: the object does not define its weights"; fail=$((fail + 1)); fi
expect 0 "@cnnc_weights = external constant [0 x i8], align 64" -- models/mlp.cnn --random-weights=0 --emit=llvm
expect 1 "cannot write" -- models/mlp.cnn --random-weights=0 -o "$tmp/no/such/dir/m.so"
CC=false expect 1 "linking" -- models/mlp.cnn --random-weights=0 -o "$tmp/e.so"
if ls "$tmp" | grep -q '^e\.so'; then echo "FAIL: failed link left output"; fail=$((fail + 1)); fi
CNNC_RUNTIME="$tmp/none.a" expect 1 "runtime library not found" -- models/mlp.cnn --random-weights=0 -o "$tmp/e.so"

# The CUDA target: CUDA C always, PTX and model.so (check_cuda_so.sh) when NVRTC was found.
expect 0 "// node: conv1" -- models/mnist_cnn.cnn --random-weights=0 --emit=cuda
expect 0 "cu_conv<32, 32, false" -- models/mnist_cnn.cnn --random-weights=0 --target=cuda --emit=cuda --gpu-arch=sm_90 --gpu-math=f32
expect 0 "cu_conv<32, 32, true" -- models/mnist_cnn.cnn --random-weights=0 --emit=cuda --gpu-arch=sm_120
expect 0 "cu_conv<32, 32, false" -- models/mnist_cnn.cnn --random-weights=0 --emit=cuda --gpu-arch=sm_75 --gpu-math=tf32
expect 1 "--gpu-arch expects sm_70 .. sm_120 (e.g. sm_80, sm_90), got 'sm_60'" -- models/mlp.cnn --random-weights=0 --emit=cuda --gpu-arch=sm_60
expect 1 "--gpu-arch expects sm_70 .. sm_120" -- models/mlp.cnn --random-weights=0 --emit=cuda --gpu-arch=compute_80
expect 1 "--gpu-arch expects sm_70 .. sm_120" -- models/mlp.cnn --random-weights=0 --emit=cuda --gpu-arch=sm_90a
expect 1 "--gpu-math expects f32 or tf32, got 'fp16'" -- models/mlp.cnn --random-weights=0 --emit=cuda --gpu-math=fp16
expect 1 "unknown --target 'tpu' (expected cpu or cuda)" -- models/mlp.cnn --random-weights=0 --target=tpu -o "$tmp/t.so"
expect 1 "--emit=ptx needs --target=cuda" -- models/mlp.cnn --random-weights=0 --target=cpu --emit=ptx
expect 1 "with --target=cuda use --emit=cuda|ptx" -- models/mlp.cnn --random-weights=0 --target=cuda --emit=llvm
expect 1 "model has parameters" -- models/mlp.cnn --emit=cuda
if "$cnnc" models/mlp.cnn --random-weights=0 --emit=ptx 2>&1 >/dev/null | grep -q "without NVRTC"; then
  expect 1 "built without NVRTC" -- models/mlp.cnn --random-weights=0 --emit=ptx
  expect 1 "cannot build a CUDA model.so" -- models/mlp.cnn --random-weights=0 --target=cuda -o "$tmp/g.so"
  if [ -e "$tmp/g.so" ]; then echo "FAIL: CUDA model.so written"; fail=$((fail + 1)); fi
else
  expect 0 "// node: fc1 (dense+bias+relu)" -- models/mlp.cnn --random-weights=0 --emit=ptx --gpu-arch=sm_90
fi

# Sizes: a tensor over the limit fails the same way whatever is asked (tests/bad has the
# messages); one within it but larger than memory is a clear error of 'cnnc run'.
expect 1 "--batch=18446744073709551615 is too large" -- models/mlp.cnn --emit=ir --batch=18446744073709551615
# --conv-algo: the plan names the Winograd layers: all 13 3×3 stride-1 convs of ResNet-18
# under winograd (in either form), winograd4 (F(4×4, 3×3)) and winograd2 (F(2×2, 3×3)),
# none under direct.
expect 1 "--conv-algo expects auto, direct, winograd, winograd4 or winograd2, got 'fft'" -- models/resnet18.cnn --emit=plan --conv-algo=fft
for algo in winograd winograd4 winograd2 direct; do
  "$cnnc" models/resnet18.cnn --random-weights=0 --emit=plan --conv-algo=$algo > "$tmp/$algo.plan" 2>&1
done
if [ "$(grep -cE ' conv2d\.winograd2? ' "$tmp/winograd.plan")" = 13 ] &&
   [ "$(grep -c ' conv2d\.winograd ' "$tmp/winograd4.plan")" = 13 ] &&
   [ "$(grep -c ' conv2d\.winograd2 ' "$tmp/winograd2.plan")" = 13 ] &&
   ! grep -q winograd "$tmp/direct.plan"; then
  pass=$((pass + 1)); else echo "FAIL: --conv-algo=winograd|winograd4|winograd2|direct in --emit=plan"; fail=$((fail + 1)); fi
expect 1 "more than cnnc supports (2^38)" -- tests/bad/huge_input.cnn --emit=plan
expect 1 "more than cnnc supports (2^38)" -- tests/bad/huge_input.cnn --random-weights=0 -o "$tmp/h.so"
expect 1 "more than cnnc supports (2^38)" -- run tests/bad/huge_input.cnn
if [ -e "$tmp/h.so" ]; then echo "FAIL: model.so written for a huge tensor"; fail=$((fail + 1)); fi
expect 1 "more than cnnc supports (2^38)" -- run tests/bad/huge_conv_output.cnn
printf 'network n(x: f32[1, 64, 65536, 65536]) {\n  return relu(x)\n}\n' > "$tmp/tib.cnn"
expect 1 "cannot allocate 1024.0 GiB for input 'x'" -- run "$tmp/tib.cnn"
printf 'network n(x: f32[1, 1, 8, 8]) {\n  return relu(conv2d(x, 1, kernel=1, pad=262140))\n}\n' \
  > "$tmp/act.cnn"
expect 1 "the interpreter keeps every value of graph 'n', which takes more than" -- run "$tmp/act.cnn"

echo "command line: $pass passed, $fail failed"
[ $fail -eq 0 ]
