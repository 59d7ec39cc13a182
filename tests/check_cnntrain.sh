#!/usr/bin/env bash
# cnntrain on one process: models/mlp.cnn compiled with `cnnc --train` learns a 10-class
# problem (tests/cnntrain_util.py) in 2 epochs, well above chance on held-out data; its
# saved weights compile into the inference model, whose accuracy under cnnrun is the one
# cnntrain reported; malformed data and mismatched batches are refused with a message.
# Usage: check_cnntrain.sh CNNC CNNTRAIN CNNRUN PYTHON (status 77: no numpy)
set -u
cnnc=$1 cnntrain=$2 cnnrun=$3 py=$4
cd "$(dirname "$0")/.." || exit 1
if ! "$py" -c "import numpy" 2> /dev/null; then
  echo "check_cnntrain.sh: skipped, needs numpy ($py)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}

# expect STATUS SUBSTRING -- ARGS...: cnntrain's status, and SUBSTRING on its stderr.
expect() {
  local want=$1 msg=$2; shift 3
  "$cnntrain" "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  if [ $rc -ne "$want" ] || { [ -n "$msg" ] && ! grep -qF -- "$msg" "$tmp/err" "$tmp/out"; }; then
    echo "FAIL: cnntrain $* -> status $rc (want $want), expected to see: $msg"
    sed 's/^/    /' "$tmp/err" "$tmp/out" | head -8
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}

"$py" tests/cnntrain_util.py data "$tmp" || exit 1
if ! "$cnnc" models/mlp.cnn --train --batch=6 --optimizer=sgd --lr=0.01 --momentum=0.9 \
     -o "$tmp/mlp_train.so"; then
  echo "FAIL: cnnc --train could not compile models/mlp.cnn"
  exit 1
fi
model=$tmp/mlp_train.so

# Training: 100 steps an epoch, a line per epoch (stderr is no terminal), the weights saved.
expect 0 "Saved $tmp/w.safetensors after 200 steps" -- "$model" --data="$tmp/train.npz" \
  --val="$tmp/val.npz" --epochs=2 --batch=6 --seed=1 --save="$tmp/w.safetensors"
cp "$tmp/err" "$tmp/train.log"
cat "$tmp/train.log"
check "one line per epoch" [ "$(grep -c '^Epoch [12]/2  loss ' "$tmp/train.log")" -eq 2 ]
correct=$(sed -n 's/^Epoch 2\/2 .*val accuracy [0-9.]*% (\([0-9]*\)\/200).*/\1/p' "$tmp/train.log")
train_acc=$(sed -n 's/^Epoch 2\/2  loss [0-9.]*  accuracy \([0-9.]*\)%.*/\1/p' "$tmp/train.log")
check "a training accuracy above chance (${train_acc:-none}%, from the steps' logits)" \
  "$py" -c "import sys; sys.exit(not ${train_acc:-0} > 50)"
# Chance is 20 of 200; the classes' patterns stand out of the noise enough for 150 (193).
check "held-out accuracy well above chance (got ${correct:-none}/200, want >= 150)" \
  [ "${correct:-0}" -ge 150 ]
first=$(sed -n 's/^Epoch 1\/2  loss \([0-9.]*\).*/\1/p' "$tmp/train.log")
second=$(sed -n 's/^Epoch 2\/2  loss \([0-9.]*\).*/\1/p' "$tmp/train.log")
check "the training loss falls ($first, then $second)" \
  "$py" -c "import sys; sys.exit(not $second < $first < 2.31)"

# The trained weights as an inference model: the same held-out accuracy under cnnrun.
if "$cnnc" models/mlp.cnn --weights="$tmp/w.safetensors" --batch=200 -o "$tmp/mlp.so" &&
   "$cnnrun" "$tmp/mlp.so" --input "$tmp/val_x.npy" --output "$tmp/out.npy" > /dev/null; then
  got=$("$py" tests/cnntrain_util.py accuracy "$tmp/out.npy" "$tmp/val.npz")
  check "cnnrun's accuracy $got/200 is cnntrain's ${correct:-none}/200" [ "$got" = "${correct:-}" ]
else
  echo "FAIL: the saved weights do not compile and run as models/mlp.cnn"
  fail=$((fail + 1))
fi

# --load: training goes on from saved weights; with a negligible rate, their accuracy.
expect 0 "val accuracy $(awk "BEGIN {printf \"%.2f\", ${correct:-0} / 2}")% (${correct:-}/200)" -- \
  "$model" --data="$tmp/train.npz" --val="$tmp/val.npz" --epochs=1 --batch=6 --lr=1e-12 \
  --load="$tmp/w.safetensors" --save="$tmp/again.safetensors"
expect 1 "cnntrain: error: --load: '$tmp/val.npz': " -- "$model" --data="$tmp/train.npz" --epochs=1 \
  --batch=6 --load="$tmp/val.npz" --save="$tmp/again.safetensors"

# The same seed, the same weights; --quiet prints nothing; no --val, no val line.
expect 0 "" -- "$model" --data="$tmp/train.npz" --epochs=1 --batch=6 --seed=3 --quiet \
  --save="$tmp/a.safetensors"
check "--quiet prints nothing" [ ! -s "$tmp/err" ]
expect 0 "Epoch 1/1  loss" -- "$model" --data="$tmp/train.npz" --epochs=1 --batch=6 --seed=3 \
  --save="$tmp/b.safetensors"
check "no val results without --val" bash -c "! grep -q 'val loss' '$tmp/err'"
check "the same seed trains the same weights" cmp -s "$tmp/a.safetensors" "$tmp/b.safetensors"
expect 0 "" -- "$model" --data="$tmp/train.npz" --epochs=1 --batch=6 --seed=4 --quiet \
  --save="$tmp/c.safetensors"
check "another seed shuffles otherwise" bash -c "! cmp -s '$tmp/a.safetensors' '$tmp/c.safetensors'"

# Mean squared error against float targets (one-hot): the loss falls, no accuracy shown.
if "$cnnc" models/mlp.cnn --train --loss=mse --batch=6 --optimizer=sgd --lr=0.01 \
     -o "$tmp/mse_train.so"; then
  expect 0 "Saved" -- "$tmp/mse_train.so" --data="$tmp/targets.npz" \
    --val="$tmp/val_targets.npz" --epochs=2 --batch=6 --save="$tmp/mse.safetensors"
  cat "$tmp/err"
  check "mse: no accuracy of targets" bash -c "! grep -q accuracy '$tmp/err'"
  first=$(sed -n 's/^Epoch 1\/2  loss \([0-9.]*\).*/\1/p' "$tmp/err")
  second=$(sed -n 's/^Epoch 2\/2  loss \([0-9.]*\).*val loss [0-9.]*$/\1/p' "$tmp/err")
  check "mse: the loss falls ($first, then $second)" \
    "$py" -c "import sys; sys.exit(not ${second:-1} < ${first:-0})"
  expect 1 "$tmp/train.npz: y must be float targets [M, 10] for a model trained with mean squared error; it is <i8 of rank 1" \
    -- "$tmp/mse_train.so" --data="$tmp/train.npz" --epochs=1 --batch=6 --save="$tmp/x.safetensors"
else
  echo "FAIL: cnnc --train --loss=mse could not compile models/mlp.cnn"
  fail=$((fail + 1))
fi

# Errors: status 1 and a message, before any training.
run=("$model" --epochs=1 --batch=6 --save="$tmp/x.safetensors")
expect 0 "usage: cnntrain MODEL_train.so" -- --help
expect 0 "cnntrain 0.1.0" -- --version
expect 1 "cnntrain: error: missing --data=TRAIN.npz" -- "$model" --epochs=1 --batch=6
expect 1 "cnntrain: error: missing --save=W.safetensors" -- "$model" --data="$tmp/train.npz" \
  --epochs=1 --batch=6
expect 1 "cnntrain: error: --epochs expects an integer from 1, got '0'" -- "${run[@]}" --epochs=0
expect 1 "cnntrain: error: --lr expects a positive number, got 'x'" -- "${run[@]}" --lr=x
expect 1 "cnntrain: error: unknown option '--frobnicate'" -- "${run[@]}" --frobnicate
expect 1 "cnntrain: error: cannot load the model" -- "$tmp/none.so" --data="$tmp/train.npz" \
  --epochs=1 --batch=6 --save="$tmp/x.safetensors"
expect 1 "this model.so holds no training model (compile it with cnnc --train)" -- "$tmp/mlp.so" --data="$tmp/train.npz" \
  --epochs=1 --batch=6 --save="$tmp/x.safetensors"
expect 1 "needs a model compiled for 4 samples per process, and $model was compiled for 6: compile it with \`cnnc MODEL.cnn --train --batch=4" \
  -- "${run[@]}" --batch=4 --data="$tmp/train.npz"
expect 1 "$tmp/bad_no_y.npz: no array 'y' (y.npy) in the archive" -- "${run[@]}" \
  --data="$tmp/bad_no_y.npz"
expect 1 "$tmp/bad_float_y.npz: y must be class indices, integers of shape [M]" -- "${run[@]}" \
  --data="$tmp/bad_float_y.npz"
expect 1 "$tmp/bad_range.npz: y[17] is 10, outside the model's 10 classes [0, 10)" -- \
  "${run[@]}" --data="$tmp/bad_range.npz"
expect 1 "$tmp/bad_count.npz: y holds 599 labels for 600 samples in x" -- "${run[@]}" \
  --data="$tmp/bad_count.npz"
expect 1 "$tmp/bad_shape.npz: x has shape [600, 28, 28]; the model's input needs [M, 1, 28, 28]" \
  -- "${run[@]}" --data="$tmp/bad_shape.npz"
expect 1 "$tmp/bad_xtype.npz: x holds <i4 numbers; the model's input is float32" -- \
  "${run[@]}" --data="$tmp/bad_xtype.npz"
expect 1 "$tmp/bad_few.npz: 4 samples, fewer than one batch of 6" -- "${run[@]}" \
  --data="$tmp/bad_few.npz"
expect 1 "$tmp/bad_truncated.npz: cannot read as an .npz archive" -- "${run[@]}" \
  --data="$tmp/bad_truncated.npz"
expect 1 "$tmp/bad_range.npz: y[17] is 10" -- "${run[@]}" --data="$tmp/train.npz" \
  --val="$tmp/bad_range.npz"
expect 1 "cnntrain: error: $tmp/nodir/w.safetensors: cannot write into '$tmp/nodir': No such file" \
  -- "${run[@]}" --data="$tmp/train.npz" --save="$tmp/nodir/w.safetensors"
# A sample of infinities: the step that meets it stops the training, nothing saved.
expect 1 "cnntrain: error: a training step: the loss is" -- "${run[@]}" --data="$tmp/bad_inf.npz"
check "no weights written after an error" [ ! -e "$tmp/x.safetensors" ]

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
