#!/usr/bin/env bash
# cnnrun on a CUDA model.so without a GPU: the fake driver (tests/fakecuda) runs the model's
# kernels emulated on the CPU (cuda_emu_build). mnist_cnn (--random-weights=0, seed-0 input):
# the CUDA model.so against the CPU model.so (max|diff| / max|cpu| <= 1e-4 in f32, 5e-3 in
# tf32); --profile lists every kernel with a time under a 'CUDA device 0' bench header; the
# device errors (wrong --device, no driver, --device-index beyond the devices); and
# --device-buffers: the same outputs as host buffers (1e-6), with --bench, and its errors
# (no driver, a CPU model, failed driver calls).
# usage: check_cnnrun_cuda.sh CNNC CNNRUN FAKECUDA-DIR [CUDA_EMU_BUILD]  (77: skipped)
set -u
cnnc=$1 cnnrun=$2 fakedir=$3 emu_build=${4:-}
cd "$(dirname "$0")/.." || exit 1
py=/usr/bin/python3
[ -x "$py" ] || py=python3

skip() { echo "SKIPPED: $*"; exit 77; }
[ -f "$fakedir/libcuda.so.1" ] || skip "no fake CUDA driver (the toolkit's cuda.h is missing)"
if [ -z "$emu_build" ] || [ ! -x "$emu_build" ]; then skip "no cuda_emu_build (no C++ compiler)"; fi
if "$cnnc" models/mlp.cnn --random-weights=0 --emit=ptx 2>&1 > /dev/null | grep -q "without NVRTC"
then
  skip "this cnnc was built without NVRTC"
fi
"$py" -c "import numpy" 2> /dev/null || skip "no Python with numpy"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
model=models/mnist_cnn.cnn

check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" > "$tmp/check" 2>&1; then
    pass=$((pass + 1))
  else
    echo "FAIL: $what"; sed 's/^/    /' "$tmp/check" | head -20; fail=$((fail + 1))
  fi
}

# cuda ARGS...: cnnrun on the fake driver, stdout and stderr in $tmp/out and $tmp/err.
cuda() { LD_LIBRARY_PATH=$fakedir "$cnnrun" "$@" > "$tmp/out" 2> "$tmp/err"; }
# failing ENTRY[:K] ARGS...: the same with that driver call failing (CNNC_FAKECUDA_FAIL).
failing() {
  local f=$1; shift
  env CNNC_FAKECUDA_FAIL="$f" LD_LIBRARY_PATH="$fakedir" "$cnnrun" "$@" > "$tmp/out" 2> "$tmp/err"
}
# nodriver ARGS...: cnnrun where no libcuda.so.1 can be found.
nodriver() { env -u LD_LIBRARY_PATH "$cnnrun" "$@" > "$tmp/out" 2> "$tmp/err"; }

# expect STATUS SUBSTRING COMMAND...: the status, and SUBSTRING in stdout or stderr.
expect() {
  local want=$1 msg=$2; shift 2
  "$@"
  local rc=$?
  if [ $rc -ne "$want" ] || ! grep -qF -- "$msg" "$tmp/err" "$tmp/out"; then
    echo "FAIL: $* -> status $rc (want $want), expected to see: $msg"
    sed 's/^/    /' "$tmp/err" "$tmp/out" | head -8
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}

# compare GOT WANT TOL: max|got - want| / max|want| <= TOL, same shapes, no NaN.
compare() {
  "$py" - "$1" "$2" "$3" <<'PY'
import sys
import numpy as np
got, want, tol = np.load(sys.argv[1]), np.load(sys.argv[2]), float(sys.argv[3])
if got.shape != want.shape:
    sys.exit("shape %s, want %s" % (got.shape, want.shape))
err = np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-30)
print("max|diff| / max|want| = %.3g (tolerance %g)" % (err, tol))
sys.exit(0 if err <= tol else 1)
PY
}

# Profile lines: every kernel of the model (conv1 conv2 maxpool_0 fc1 fc2) with a time;
# conv2 has two (its reduction is split: "conv2d(split-K=2)", then "split-K-sum+bias+relu").
profiled() {
  grep -q '^bench: 3 runs after 0 warm-up, CUDA device 0, batch 1, profiling on$' "$tmp/out" &&
    for k in conv1 conv2 maxpool_0 fc1 fc2; do
      grep -Eq "^ +[0-9]+  $k +[a-zA-Z0-9+_()=-]+ +[0-9]+\.[0-9]{4} +[0-9.]+%" "$tmp/out" || return 1
    done &&
    grep -Eq "^ +[0-9]+  conv2 +conv2d\(split-K=2\) " "$tmp/out" &&
    grep -Eq "^ +[0-9]+  conv2 +split-K-sum\+bias\+relu " "$tmp/out"
}

"$cnnc" $model --random-weights=0 -o "$tmp/cpu.so" || { echo "FAIL: cnnc (CPU)"; exit 1; }
"$cnnrun" "$tmp/cpu.so" --seed 0 --output "$tmp/cpu.npy" > /dev/null || exit 1
declare -A tol=([f32]=1e-4 [tf32]=5e-3)
for math in f32 tf32; do
  flags=(--random-weights=0 "--gpu-math=$math")
  so=$tmp/$math.so
  check "cnnc --target=cuda ${flags[*]}" "$cnnc" $model "${flags[@]}" --target=cuda -o "$so"
  check "cuda_emu_build ${flags[*]}" "$emu_build" $model "${flags[@]}" -o "$tmp/$math.emu.so"
  export CNNC_FAKECUDA_KERNELS=$tmp/$math.emu.so
  check "$math: cnnrun on the fake driver" cuda "$so" --seed 0 --output "$tmp/$math.npy"
  check "$math: CUDA output against the CPU model.so" \
    compare "$tmp/$math.npy" "$tmp/cpu.npy" "${tol[$math]}"
done

# CNNC_FAKECUDA_KERNELS stays the tf32 build's.
so=$tmp/tf32.so
check "--profile --bench 3 lists every kernel" cuda "$so" --profile --bench 3 --warmup 0
check "--profile output" profiled
expect 1 "it does not run on the CPU" cuda "$so" --device cpu
expect 1 "compile it with cnnc --target=cuda" cuda "$tmp/cpu.so" --device cuda
expect 1 "no CUDA driver" nodriver "$so"
expect 1 "but 1 device is present" cuda "$so" --device-index 1

# --device-buffers: inputs and outputs on the device, the same results.
check "--device-buffers run" cuda "$so" --seed 0 --device-buffers --output "$tmp/dev.npy"
check "--device-buffers output equals the host buffers' run" \
  compare "$tmp/dev.npy" "$tmp/tf32.npy" 1e-6
check "--device-buffers --bench 2 --top 3" cuda "$so" --seed 0 --device-buffers --bench 2 \
  --warmup 0 --top 3 --output "$tmp/devb.npy"
check "--device-buffers --bench header" grep -q '^bench: 2 runs after 0 warm-up, CUDA device 0' \
  "$tmp/out"
check "--device-buffers --top output" grep -q '^fc2\[0\] top-3: ' "$tmp/out"
check "--device-buffers output after --bench" compare "$tmp/devb.npy" "$tmp/tf32.npy" 1e-6
expect 1 "with --device-buffers: invalid argument (CNN_DEVICE_POINTERS is for CUDA models" \
  cuda "$tmp/cpu.so" --device-buffers
expect 1 "no CUDA driver" nodriver "$so" --device-buffers
# The driver failing cnnrun's own calls (the runtime retains the context once and copies
# nothing to the host with device pointers): an error, everything released (the sanitizer
# build checks for leaks).
expect 1 "--device-buffers: cuDevicePrimaryCtxRetain: CUDA_ERROR_UNKNOWN" \
  failing cuDevicePrimaryCtxRetain:2 "$so" --device-buffers
expect 1 "--device-buffers: cuMemcpyDtoHAsync: CUDA_ERROR_UNKNOWN" \
  failing cuMemcpyDtoHAsync_v2 "$so" --device-buffers

echo "cnnrun_cuda: $pass passed, $fail failed"
[ $fail -eq 0 ]
