#!/usr/bin/env bash
# `cnnc run models/resnet18.cnn` gives a 1x1000 output, the same bytes on every run.
set -u
cnnc=$1
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$cnnc" run models/resnet18.cnn -o "$tmp/a.npy" || exit 1
"$cnnc" run models/resnet18.cnn -o "$tmp/b.npy" || exit 1
cmp "$tmp/a.npy" "$tmp/b.npy" || { echo "FAIL: outputs differ between runs"; exit 1; }
"$cnnc" run models/resnet18.cnn | tee "$tmp/summary"
grep -q "^fc: f32\[1,1000\]" "$tmp/summary" || { echo "FAIL: no 1x1000 output"; exit 1; }
echo "resnet18 run: 1 passed, 0 failed"
