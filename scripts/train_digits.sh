#!/usr/bin/env bash
# The digits network of `make demo` trained by cnnc itself (`make train-demo`): the split of
# tools/train_mnist.py (1437 training digits, the 360 of models/digits held out) exported to
# .npz, models/mnist_cnn.cnn compiled with PyTorch's settings there (Adam, lr 1e-3 halved
# every 4 epochs, batch 32, 10 epochs) and trained by cnntrain, its weights compiled into the
# inference model classifying the held-out digits (examples/digits); then models/mlp.cnn.
# Usage: scripts/train_digits.sh CNNC CNNTRAIN DIGITS OUT_DIR
set -euo pipefail
cnnc=$1 cnntrain=$2 digits=$3 out=$4
cd "$(dirname "$0")/.."
mkdir -p "$out"
/usr/bin/python3 tools/train_mnist.py --export="$out"
for m in mnist_cnn mlp; do
  echo
  echo "== models/$m.cnn trained by cnntrain"
  "$cnnc" models/$m.cnn --train --batch=32 --optimizer=adam --lr=0.001 -o "$out/${m}_train.so"
  "$cnntrain" "$out/${m}_train.so" --data="$out/digits_train.npz" --val="$out/digits_test.npz" \
    --epochs=10 --batch=32 --lr-step=4 --lr-gamma=0.5 --save="$out/$m.safetensors"
  "$cnnc" models/$m.cnn --weights="$out/$m.safetensors" --batch=360 -o "$out/${m}_b360.so"
  "$digits" models/digits "$out/${m}_b360.so"
done
echo "PyTorch, training models/mnist_cnn.cnn (tools/train_mnist.py):" \
  "$(sed -n 's/^accuracy //p' models/digits/expected.txt) correct"
