#!/usr/bin/env bash
# `make train-demo` (scripts/train_digits.sh): models/mnist_cnn.cnn trained by cnnc --train and
# cnntrain with PyTorch's split and settings must classify the held-out digits within 3 of
# PyTorch's accuracy (models/digits/expected.txt), and models/mlp.cnn at least 340 of 360.
# Skipped (77) without the Python of tools/train_mnist.py (torch, scikit-learn).
set -u
cnnc=$1 cnntrain=$2 digits=$3
cd "$(dirname "$0")/.." || exit 1
if ! /usr/bin/python3 -c "import torch, sklearn" 2> /dev/null; then
  echo "check_train_digits.sh: skipped, needs /usr/bin/python3 with torch and scikit-learn"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! scripts/train_digits.sh "$cnnc" "$cnntrain" "$digits" "$tmp" > "$tmp/log" 2>&1; then
  tail -n 20 "$tmp/log"
  echo "FAIL: scripts/train_digits.sh failed"
  exit 1
fi
grep -E "^Epoch|correct" "$tmp/log"
want=$(sed -n 's/^accuracy \([0-9]*\)\/.*/\1/p' models/digits/expected.txt)
cnn=$(sed -n 's/.*mnist_cnn_b360\.so: \([0-9]*\)\/360 correct.*/\1/p' "$tmp/log")
mlp=$(sed -n 's/.*mlp_b360\.so: \([0-9]*\)\/360 correct.*/\1/p' "$tmp/log")
fail=0
if [ -z "$cnn" ] || [ $((cnn - want)) -lt -3 ] || [ $((cnn - want)) -gt 3 ]; then
  echo "FAIL: mnist_cnn trained by cnntrain: ${cnn:-no}/360 correct, PyTorch's $want/360 +- 3"
  fail=1
fi
if [ -z "$mlp" ] || [ "$mlp" -lt 340 ]; then
  echo "FAIL: mlp trained by cnntrain: ${mlp:-no}/360 correct, want 340 or more"
  fail=1
fi
[ $fail -eq 0 ] && echo "PASS: mnist_cnn $cnn/360 (PyTorch $want/360), mlp $mlp/360"
exit $fail
