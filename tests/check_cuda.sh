#!/usr/bin/env bash
# One zoo model through the CUDA backend: its kernels compile with NVRTC to PTX
# for sm_80 and sm_90, TF32 and f32, ptxas accepts each PTX for its
# architecture, every kernel is headed by the node it implements, and the TF32
# build uses tensor-core mma where the f32 build must not.
# usage: check_cuda.sh CNNC PTXAS MODEL BATCH [all]    (status 77: skipped)
# With "all" every architecture in both math modes; otherwise sm_80 with TF32 and sm_90
# with f32 (each architecture and each mode once; ptxas takes most of the time).
set -u
cnnc=$1 ptxas=$2 model=$3 batch=$4 matrix=${5:-}
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if "$cnnc" models/mlp.cnn --random-weights=0 --emit=ptx 2>&1 >/dev/null | grep -q "without NVRTC"; then
  echo "SKIP: this cnnc was built without NVRTC"; exit 77
fi
if [ ! -x "$ptxas" ]; then echo "SKIP: ptxas not found"; exit 77; fi
fail=0
if [ "$matrix" = all ]; then builds="80:tf32 80:f32 90:tf32 90:f32"; else builds="80:tf32 90:f32"; fi
for build in $builds; do
  arch=${build%:*} math=${build#*:}
  ptx="$tmp/$model.sm_$arch.$math.ptx"
  start=$(date +%s.%N)
  if ! "$cnnc" "models/$model.cnn" --random-weights=0 --batch="$batch" --emit=ptx \
       --gpu-arch="sm_$arch" --gpu-math="$math" -o "$ptx" 2> "$tmp/err"; then
    echo "FAIL: NVRTC, sm_$arch $math:"; head -20 "$tmp/err"; fail=1; continue
  fi
  mid=$(date +%s.%N)
  if ! "$ptxas" -arch="sm_$arch" "$ptx" -o "$tmp/out.cubin" 2> "$tmp/err"; then
    echo "FAIL: ptxas, sm_$arch $math:"; head -20 "$tmp/err"; fail=1; continue
  fi
  end=$(date +%s.%N)
  entries=$(grep -c '^\.visible \.entry' "$ptx")
  headed=$(grep -c '^// node: ' "$ptx")
  mma=$(grep -c 'mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32' "$ptx")
  printf '%s batch %s sm_%s %s: %d kernels, NVRTC %.1f s, ptxas %.1f s\n' "$model" "$batch" \
    "$arch" "$math" "$entries" "$(echo "$mid - $start" | bc)" "$(echo "$end - $mid" | bc)"
  if [ "$entries" -eq 0 ] || [ "$entries" -ne "$headed" ]; then
    echo "FAIL: $entries kernels but $headed node comments"; fail=1; fi
  if [ "$math" = tf32 ] && grep -q conv2d "models/$model.cnn" && [ "$mma" -eq 0 ]; then
    echo "FAIL: TF32 build without mma"; fail=1; fi
  if [ "$math" = f32 ] && [ "$mma" -ne 0 ]; then echo "FAIL: f32 build uses TF32 mma"; fail=1; fi
done
exit $fail
