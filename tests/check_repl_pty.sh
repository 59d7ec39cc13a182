#!/usr/bin/env bash
# cnnc repl at a terminal (a tmux pane): the prompt, TAB completion of a file, a command and
# of a node name, history recall with Up, cursor movement with Left and Ctrl-A, Ctrl-C
# dropping an unfinished statement, and the history file written at the end. Skipped (77)
# without tmux.
set -u
cnnc=$(realpath "$1")
command -v tmux > /dev/null || { echo "SKIP: tmux is not installed"; exit 77; }
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d)
sock="$tmp/tmux.sock"
trap 'tmux -S "$sock" kill-server 2> /dev/null; rm -rf "$tmp"' EXIT
pass=0 fail=0

check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}
screen() { tmux -S "$sock" capture-pane -p -t repl -S -200; }
keys() { tmux -S "$sock" send-keys -t repl "$@"; }
# wait_for COUNT TEXT: until TEXT is on COUNT lines of the pane (60 s at most).
wait_for() {
  for _ in $(seq 600); do
    [ "$(screen | grep -cF -- "$2")" -ge "$1" ] && return 0
    sleep 0.1
  done
  echo "timed out waiting for: $2"; screen | tail -15 | sed 's/^/    /'
  return 1
}

tmux -S "$sock" new-session -d -s repl -x 160 -y 50 \
  "env HOME=$tmp CNNC_HISTORY=$tmp/history TERM=xterm $cnnc repl; echo repl exited with \$?; sleep 30"
check "banner and prompt" wait_for 1 "cnnc>"
keys ":load models/ml" Tab Enter
check "TAB completes a file name after :load" wait_for 1 "mlp: input image f32[1,1,28,28] -> output fc3 f32[1,10]"

# TAB completes a node name (flat -> flatten_0) and a command (:comp -> :compare).
keys ":print flat" Tab Enter
check "TAB completes a node name" wait_for 1 "flatten_0: f32[1,784]  (reference interpreter)"
keys ":comp" Tab Enter
check "TAB completes a command" wait_for 1 "all 5 values agree"

# Up recalls the previous line (:compare), Up again the one before (:print flatten_0).
keys Up Up Enter
check "Up Up recalls :print flatten_0" wait_for 2 "flatten_0: f32[1,784]  (reference interpreter)"

# Cursor movement: Left moves into the line, Ctrl-A to its start.
keys ":print c3" Left Left "f" Enter
check "Left inserts inside the line" wait_for 1 "fc3: f32[1,10]  (output of the compiled model)"
keys "print fc2" C-a ":" Enter
check "Ctrl-A inserts at the start" wait_for 1 "fc2: f32[1,64]  (reference interpreter)"

# Ctrl-C drops a statement left open, and the session goes on.
keys "x = relu(" Enter
check "continuation prompt" wait_for 1 "  ...>"
keys C-c
keys "y = relu(fc3)" Enter
check "Ctrl-C drops the unfinished statement" wait_for 1 "y: f32[1, 10]"

keys ":quit" Enter
check ":quit leaves with status 0" wait_for 1 "repl exited with 0"
for _ in $(seq 100); do [ -s "$tmp/history" ] && break; sleep 0.1; done
# libedit writes a space as \040.
check "history holds the completed line" grep -qE ':print(\\040| )flatten_0' "$tmp/history"
check "history holds the edited line" grep -qE '^:print(\\040| )fc2' "$tmp/history"

echo "check_repl_pty: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
