#!/usr/bin/env bash
# The trained MNIST network end to end: compiles models/mnist_cnn.cnn with its weights at batch 1
# and at the held-out set's size, classifies models/digits through the C API (examples/digits)
# and requires exactly PyTorch's accuracy (models/digits/expected.txt) from both.
set -u
cnnc=$1 digits=$2
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

want=$(sed -n 's/^accuracy //p' models/digits/expected.txt)
n=${want#*/}
for batch in 1 "$n"; do
  if ! "$cnnc" models/mnist_cnn.cnn --weights=models/mnist_cnn.safetensors --batch="$batch" \
       -o "$tmp/mnist_b$batch.so"; then
    echo "FAIL: cnnc could not compile models/mnist_cnn.cnn at batch $batch"
    exit 1
  fi
done
if ! "$digits" models/digits "$tmp/mnist_b1.so" "$tmp/mnist_b$n.so" > "$tmp/out"; then
  echo "FAIL: examples/digits exited with an error"
  exit 1
fi
cat "$tmp/out"
got=$(grep -c "^$tmp/mnist_b[0-9]*\.so: $want correct" "$tmp/out")
if [ "$got" -ne 2 ]; then
  echo "FAIL: expected $want correct from both models (PyTorch's accuracy)"
  exit 1
fi
echo "PASS: $want correct at batch 1 and batch $n, as in PyTorch"
