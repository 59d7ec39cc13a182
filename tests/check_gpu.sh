#!/usr/bin/env bash
# Every zoo model on a real GPU: at batch 1 and 32, in f32 and tf32, the CUDA model.so run by
# cnnrun must match the CPU model.so of the same model and batch (same weights, the same
# seeded input) within max|gpu - cpu| / max|cpu| <= 1e-4 (f32) or 5e-3 (tf32); then the C API
# paths only a device exercises (tests/gpu_api.py). Builds run in parallel, runs one by one.
# usage: check_gpu.sh CNNC CNNRUN [MODEL ...]    (status 77: skipped, no GPU)
# env: CNNC_GPU_BATCHES (default "1 32"), CNNC_GPU_JOBS (parallel builds), PYTHON
set -u
cnnc=$1 cnnrun=$2
shift 2
cd "$(dirname "$0")/.." || exit 1
py=${PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3

skip() { echo "SKIPPED: $*"; exit 77; }
if ! command -v nvidia-smi > /dev/null; then skip "no NVIDIA GPU/driver (nvidia-smi not found)"; fi
gpus=$(nvidia-smi -L 2>&1)
if ! grep -q '^GPU [0-9]' <<< "$gpus"; then
  skip "no NVIDIA GPU/driver (nvidia-smi -L lists no GPU: $(head -1 <<< "$gpus"))"
fi
probe=$("$py" tests/gpu_api.py probe 2>&1)
case $? in
  0) ;;
  77) skip "no NVIDIA GPU/driver ($probe)" ;;
  *) echo "FAIL: tests/gpu_api.py probe: $probe"; exit 1 ;;
esac
if "$cnnc" models/mlp.cnn --random-weights=0 --emit=ptx 2>&1 > /dev/null | grep -q "without NVRTC"
then
  skip "this cnnc was built without NVRTC"
fi
arch=${probe%% *}
echo "GPU: ${probe#* } ($arch)"

# The biggest models first, so that the parallel builds do not end on them.
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  for m in vgg16 resnet50 resnet18 mobilenet_v2 squeezenet1_1 models/*.cnn; do
    m=$(basename "$m" .cnn)
    if [ -f "models/$m.cnn" ] && [[ " ${models[*]-} " != *" $m "* ]]; then models+=("$m"); fi
  done
fi
read -r -a batches <<< "${CNNC_GPU_BATCHES:-1 32}"
maths=(f32 tf32)
declare -A tol=([f32]=1e-4 [tf32]=5e-3)
cores=$(nproc 2> /dev/null || echo 2)
jobs_max=${CNNC_GPU_JOBS:-$(( cores > 3 ? cores / 2 : 1 ))}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# build NAME CNNC-ARGS...: $tmp/NAME.so, its log, and its build time in ms.
build() {
  local name=$1 t0
  shift
  t0=$(now_ms)
  if "$cnnc" "$@" -o "$tmp/$name.so" > "$tmp/$name.log" 2>&1; then
    echo $(( $(now_ms) - t0 )) > "$tmp/$name.ms"
  fi
}

start=$(now_ms)
for m in "${models[@]}"; do
  for b in "${batches[@]}"; do
    for target in cpu "${maths[@]}"; do
      while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
      if [ "$target" = cpu ]; then
        build "${m}_b${b}_cpu" "models/$m.cnn" --random-weights=0 --batch="$b" &
      else
        build "${m}_b${b}_$target" "models/$m.cnn" --random-weights=0 --batch="$b" \
          --target=cuda --gpu-arch="$arch" --gpu-math="$target" &
      fi
    done
  done
done
wait
echo "built ${#models[@]} model(s) x ${#batches[@]} batch size(s) x cpu, ${maths[*]}" \
  "in $(( ($(now_ms) - start) / 1000 )) s ($jobs_max at a time)"

fail=0
# run NAME: cnnrun on seed 0 (the inputs of tests/ref/), outputs under $tmp/NAME/.
run() {
  mkdir -p "$tmp/$1"
  if [ ! -f "$tmp/$1.ms" ]; then
    echo "FAIL: $1: cnnc failed:"; head -20 "$tmp/$1.log"; return 1
  fi
  if ! "$cnnrun" "$tmp/$1.so" --seed=0 --output="$tmp/$1/y.npy" > "$tmp/$1.run" 2>&1; then
    echo "FAIL: $1: cnnrun failed:"; head -20 "$tmp/$1.run"; return 1
  fi
}

# compare WHAT GOT-DIR WANT-DIR TOL
compare() {
  local out
  out=$("$py" tests/gpu_api.py compare "$2" "$3" "$4" 2>&1)
  local rc=$?
  if [ $rc -eq 0 ]; then echo "ok: $1: $out"; else echo "FAIL: $1: $out"; fail=1; fi
}

for m in "${models[@]}"; do
  for b in "${batches[@]}"; do
    cpu=${m}_b${b}_cpu
    run "$cpu" || { fail=1; continue; }
    if [ "$b" = 1 ] && [ -f "tests/ref/${m}_b1.npy" ]; then
      mkdir -p "$tmp/ref_$m" && cp "tests/ref/${m}_b1.npy" "$tmp/ref_$m/y.npy"
      compare "$m batch 1 CPU model.so against tests/ref" "$tmp/$cpu" "$tmp/ref_$m" 1e-4
    fi
    for math in "${maths[@]}"; do
      gpu=${m}_b${b}_$math
      run "$gpu" || { fail=1; continue; }
      compare "$m batch $b $math (build $(( $(cat "$tmp/$gpu.ms") / 1000 )) s)" \
        "$tmp/$gpu" "$tmp/$cpu" "${tol[$math]}"
    done
  done
done

# The C API on the device, with the smallest convolutional model at hand.
api=${models[0]}
for m in "${models[@]}"; do [ "$m" = mnist_cnn ] && api=mnist_cnn; done
b=${batches[0]}
if [ -f "$tmp/${api}_b${b}_f32.ms" ] && [ -f "$tmp/${api}_b${b}_cpu.ms" ]; then
  echo "C API on the device ($api batch $b, f32):"
  "$py" tests/gpu_api.py api "$tmp/${api}_b${b}_f32.so" "$tmp/${api}_b${b}_cpu.so" "${tol[f32]}" \
    | sed 's/^/  /'
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail=1
else
  echo "FAIL: no CUDA and CPU build of $api batch $b for the C API checks"; fail=1
fi
echo "total $(( ($(now_ms) - start) / 1000 )) s"
exit $fail
