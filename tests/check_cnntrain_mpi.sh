#!/usr/bin/env bash
# cnntrain data-parallel under mpirun: 20 steps of a global batch of 6 give the weights of
# one process (1 x 6) on 2 processes (2 x 3) and 3 processes (3 x 2), within 1e-5 relative;
# a process killed or stopped in the middle of training ends the job with status 1 and a
# message within --timeout, instead of leaving the others waiting.
# Usage: check_cnntrain_mpi.sh CNNC CNNTRAIN PYTHON (status 77: no mpirun or numpy, or a
# cnntrain built without MPI)
set -u
cnnc=$1 cnntrain=$2 py=$3
cd "$(dirname "$0")/.." || exit 1
if ! command -v mpirun > /dev/null || ! "$py" -c "import numpy" 2> /dev/null ||
   "$cnntrain" --version | grep -q "without MPI"; then
  echo "check_cnntrain_mpi.sh: skipped, needs mpirun, numpy ($py) and a cnntrain with MPI"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
mpi=(mpirun --oversubscribe)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)

check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}

"$py" tests/cnntrain_util.py data "$tmp" || exit 1
# 120 samples: one epoch of 20 steps of 6.
"$py" -c "import numpy as np; d = np.load('$tmp/train.npz');
np.savez('$tmp/small.npz', x=d['x'][:120], y=d['y'][:120])" || exit 1
for b in 1 2 3 6; do
  if ! "$cnnc" models/mlp.cnn --train --batch=$b --optimizer=sgd --lr=0.01 --momentum=0.9 \
       -o "$tmp/mlp_b$b.so"; then
    echo "FAIL: cnnc --train could not compile models/mlp.cnn at batch $b"
    exit 1
  fi
done

train=(--data="$tmp/small.npz" --epochs=1 --batch=6 --seed=5 --threads=1 --timeout=60)
"$cnntrain" "$tmp/mlp_b6.so" "${train[@]}" --save="$tmp/w1.safetensors" 2> "$tmp/err1"
check "1 process x 6 trains" [ $? -eq 0 ]
for k in 2 3; do
  "${mpi[@]}" -np $k "$cnntrain" "$tmp/mlp_b$((6 / k)).so" "${train[@]}" \
    --save="$tmp/w$k.safetensors" > "$tmp/out$k" 2>&1
  rc=$?
  cat "$tmp/out$k"
  check "$k processes x $((6 / k)) train (status $rc)" [ $rc -eq 0 ]
  check "$k processes: one line for the epoch, from process 0" \
    [ "$(grep -c '^Epoch 1/1' "$tmp/out$k")" -eq 1 ]
  check "$k processes x $((6 / k)) give the weights of 1 x 6 within 1e-5" \
    "$py" tests/cnntrain_util.py same "$tmp/w1.safetensors" "$tmp/w$k.safetensors" 1e-5
done
# The tolerance is finer than what the steps change: another order gives other weights.
"$cnntrain" "$tmp/mlp_b6.so" "${train[@]}" --seed=6 --save="$tmp/w1b.safetensors" 2> /dev/null
check "another order of the samples differs by 1e-3 or more" \
  "$py" tests/cnntrain_util.py apart "$tmp/w1.safetensors" "$tmp/w1b.safetensors" 1e-3

# A global batch that does not fit the model or the processes.
"${mpi[@]}" -np 2 "$cnntrain" "$tmp/mlp_b6.so" "${train[@]}" --save="$tmp/x.safetensors" \
  > "$tmp/out" 2>&1
check "2 processes with a model for 6 each: status 1" [ $? -ne 0 ]
check "... saying to compile for 3" grep -qF -- "--batch=6 over 2 processes needs a model compiled for 3 samples per process" "$tmp/out"
check "... once, from process 0" [ "$(grep -c 'cnntrain: error' "$tmp/out")" -eq 1 ]

# A sample of infinities in one process's share: every process stops at that step, the job
# ends with status 1 and one message, from that process, without MPI_Abort.
"$py" -c "import numpy as np; d = np.load('$tmp/small.npz'); x = d['x'].copy(); x[52] = np.inf
np.savez('$tmp/inf.npz', x=x, y=d['y'])" || exit 1
"${mpi[@]}" -np 2 "$cnntrain" "$tmp/mlp_b3.so" "${train[@]}" --data="$tmp/inf.npz" \
  --save="$tmp/x.safetensors" > "$tmp/out" 2>&1
check "infinities: status 1" [ $? -ne 0 ]
check "... one message, the step's" [ "$(grep -c 'cnntrain: error: a training step: the loss is' \
  "$tmp/out")" -eq 1 -a "$(grep -c 'cnntrain: error' "$tmp/out")" -eq 1 ]
check "... no MPI_Abort" bash -c "! grep -q MPI_ABORT '$tmp/out'"

# Process 1 is killed, then stopped, 2 s into 5000 epochs: the job ends with status 1 and
# a message, within --timeout=4 (the stopped one is never answering again), not hanging.
long=(--data="$tmp/train.npz" --epochs=5000 --batch=6 --threads=1 --timeout=4
      --save="$tmp/x.safetensors")
for sig in KILL STOP; do
  start=$(date +%s)
  timeout 60 "${mpi[@]}" -np 2 bash -c '[ "$OMPI_COMM_WORLD_RANK" = 1 ] &&
    (sleep 2; kill -'$sig' $$) & exec "$@"' cnntrain "$cnntrain" "$tmp/mlp_b3.so" "${long[@]}" \
    > "$tmp/out" 2>&1
  rc=$? took=$(($(date +%s) - start))
  check "SIG$sig to process 1: the job ends (status $rc, not 0 nor the timeout's 124)" \
    [ $rc -ne 0 -a $rc -ne 124 ]
  check "SIG$sig to process 1: over within 30 s (took $took s)" [ "$took" -le 30 ]
  if [ $sig = STOP ]; then
    check "SIG$sig: cnntrain's watchdog says why" grep -qF \
      "a step took longer than --timeout: a process stopped answering or died" "$tmp/out"
  fi
  check "SIG$sig: nothing saved" [ ! -e "$tmp/x.safetensors" ]
  sed 's/^/    /' "$tmp/out" | head -6
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
