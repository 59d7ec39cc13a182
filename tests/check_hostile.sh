#!/usr/bin/env bash
# Hostile models, generated here because they are large (tests/bad holds the
# small ones): each must end in a located error (FILE:LINE:COL: error:, or
# FILE: error: for the file as a whole), exit status 1, no signal, no output
# file, within 10 seconds, for --emit=ir, -o and `cnnc run`. Then the --max-*
# flags that raise the limits.
set -u
cnnc=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

problem() {
  echo "FAIL $1: $2"
  fail=$((fail + 1))
}

# expect_error NAME MODEL PATTERN [FLAGS...]: every mode fails as described.
expect_error() {
  local name=$1 model=$2 pattern=$3
  shift 3
  local mode
  for mode in emit so run; do
    local args=("$model" "$@")
    case $mode in
      emit) args+=(--emit=ir -o "$tmp/out/out.ir") ;;
      so) args+=(--random-weights=1 -o "$tmp/out/out.so") ;;
      run) args=(run "${args[@]}" -o "$tmp/out/out.npy") ;;
    esac
    rm -rf "$tmp/out" && mkdir "$tmp/out"
    local start=$(date +%s%N)
    timeout 60 "$cnnc" "${args[@]}" > "$tmp/stdout" 2> "$tmp/err"
    local rc=$? ms=$((($(date +%s%N) - start) / 1000000))
    if [ $rc -ne 1 ]; then
      problem "$name ($mode)" "exit status $rc, expected 1"
    elif [ $ms -gt 10000 ]; then
      problem "$name ($mode)" "took $ms ms"
    elif [ -n "$(ls -A "$tmp/out")" ]; then
      problem "$name ($mode)" "left $(ls -A "$tmp/out") behind"
    elif ! head -n 1 "$tmp/err" | cut -c 1-400 |
        grep -Eq "^[^ :]+(:[0-9]+:[0-9]+)?: error: $pattern"; then
      problem "$name ($mode)" "first message is not a located '$pattern':
$(head -n 1 "$tmp/err" | cut -c 1-400)"
    else
      pass=$((pass + 1))
    fi
  done
}

# expect_ok NAME MODEL [FLAGS...]: the graph is built.
expect_ok() {
  local name=$1 model=$2
  shift 2
  if timeout 60 "$cnnc" "$model" --emit=ir "$@" > /dev/null 2> "$tmp/err"; then
    pass=$((pass + 1))
  else
    problem "$name" "$(head -n 3 "$tmp/err" | cut -c 1-400)"
  fi
}

# network n(x: f32[1, 4]) { BODY }, written to $tmp/NAME.cnn
model() {
  printf 'network n(x: f32[1, 4]) {\n%s\n}\n' "$2" > "$tmp/$1.cnn"
}

# 50,000 terms: a left-deep tree far deeper than --max-depth.
model chain "  y = x$(printf ' + x%.0s' $(seq 49999))
  return y"
expect_error "50000-term sum" "$tmp/chain.cnn" "expression nested too deeply"

# 20,000 blocks, each calling the next.
{
  for i in $(seq 0 19999); do echo "block b$i(x) { return b$((i + 1))(x) }"; done
  echo "block b20000(x) { return relu(x) }"
} > "$tmp/blocks.cnn"
model blocks_net "  return b0(x)"
cat "$tmp/blocks_net.cnn" >> "$tmp/blocks.cnn"
expect_error "20000 chained block calls" "$tmp/blocks.cnn" "expression nested too deeply"

# 50,000 open brackets, and as many minus signs: the parser's own stack.
model parens "  y = $(printf '(%.0s' $(seq 50000))x$(printf ')%.0s' $(seq 50000))
  return y"
expect_error "50000 parentheses" "$tmp/parens.cnn" "nested too deeply to parse"
model minus "  y = $(printf -- '-%.0s' $(seq 50000))1
  return x"
expect_error "50000 minus signs" "$tmp/minus.cnn" "nested too deeply to parse"

# Work and size at the default limits.
model repeat "  return repeat 100000000 relu(x)"
expect_error "repeat 100000000" "$tmp/repeat.cnn" "the graph has more than 100000 nodes"
model loops "  s = 0
  for i in range(1000000) {
    for j in range(1000000) { s = s + 1 }
  }
  return x"
expect_error "nested loops over range(1000000)" "$tmp/loops.cnn" "elaboration takes more than"
printf 'network n(x: f32[1, 3, 8, 8]) {\n  return conv2d(x, 1000000000, kernel=3) as conv1\n}\n' \
  > "$tmp/conv.cnn"
expect_error "conv2d with 10^9 channels" "$tmp/conv.cnn" \
  "parameter 'conv1.weight' needs 100.6 GiB"

# Source files that are not small regular files.
expect_error "/dev/zero" /dev/zero "'/dev/zero' is larger than the limit on source files"
mkdir "$tmp/dir.cnn"
expect_error "a directory" "$tmp/dir.cnn" "cannot read .*: Is a directory"
mkfifo "$tmp/fifo.cnn" # no writer: read as empty, not waited for
expect_error "a FIFO without a writer" "$tmp/fifo.cnn" "no network in this file"

# The flags raise (or lower) the limits, and are checked.
model chain600 "  y = x$(printf ' + x%.0s' $(seq 599))
  return y"
expect_error "600-term sum" "$tmp/chain600.cnn" "expression nested too deeply"
expect_ok "600-term sum, --max-depth=1000" "$tmp/chain600.cnn" --max-depth=1000
expect_error "conv2d 10^9 channels, --max-weights=8G" "$tmp/conv.cnn" \
  "parameter 'conv1.weight' needs 100.6 GiB, over the 8.0 GiB limit" --max-weights=8G
sed -i 's/1000000000/1000000/' "$tmp/conv.cnn"
expect_ok "conv2d 10^6 channels, --max-weights=1G" "$tmp/conv.cnn" --max-weights=1G
expect_error "conv2d 10^6 channels, --max-weights=100M" "$tmp/conv.cnn" \
  "parameter 'conv1.weight' needs 103.0 MiB, over the 100.0 MiB limit" --max-weights=100M
for bad in --max-depth=0 --max-depth=5001 --max-steps=-1 --max-nodes=1x --max-weights=8T \
           --max-source=2G --max-steps; do
  "$cnnc" "$tmp/chain600.cnn" --emit=ir "$bad" > /dev/null 2> "$tmp/err"
  rc=$?
  if [ $rc -eq 1 ] && grep -q "^cnnc: error: .*--max-" "$tmp/err"; then
    pass=$((pass + 1))
  else
    problem "flag $bad" "exit status $rc: $(head -n 1 "$tmp/err")"
  fi
done
for flag in --max-depth --max-steps --max-nodes --max-weights --max-source; do
  if "$cnnc" --help | grep -q -- "$flag="; then
    pass=$((pass + 1))
  else
    problem "--help" "no $flag"
  fi
done

# Long graphs within the limits are optimized in linear time: a chain of 10,000
# conv/batchnorm/relu layers (30,000 nodes) and of 90,000 relus through the passes, and
# 20,000 concats of one value through the passes and the plan's printout.
expect_fast() {
  local name=$1 model=$2 emit=${3:-ir-opt} start=$(date +%s%N)
  timeout 60 "$cnnc" "$model" --random-weights=0 --emit="$emit" > /dev/null 2> "$tmp/err"
  local rc=$? ms=$((($(date +%s%N) - start) / 1000000))
  if [ $rc -ne 0 ]; then
    problem "$name" "exit status $rc: $(head -n 1 "$tmp/err" | cut -c 1-400)"
  elif [ $ms -gt 10000 ]; then
    problem "$name" "took $ms ms through the passes"
  else
    pass=$((pass + 1))
  fi
}
printf 'network n(x: f32[1, 4, 8, 8]) {\n%s\n  return x\n}\n' \
  "$(yes '  x = relu(batchnorm(conv2d(x, 4, kernel=1, bias=false)))' | head -n 10000)" \
  > "$tmp/convchain.cnn"
expect_fast "10000 conv/batchnorm/relu layers" "$tmp/convchain.cnn"
printf 'network n(x: f32[1, 4, 8, 8]) {\n%s\n  return x\n}\n' \
  "$(yes '  x = relu(x)' | head -n 90000)" > "$tmp/reluchain.cnn"
expect_fast "90000 relus" "$tmp/reluchain.cnn"
printf '%s\n' 'network n(x: f32[1, 1, 2, 2]) {' '  y = relu(x)' '  s = x' \
  '  for i in range(20000) {' '    s = s + concat(x, y, sigmoid(x))' '  }' '  return s' '}' \
  > "$tmp/concats.cnn"
expect_fast "20000 concats of one value" "$tmp/concats.cnn" plan

echo "limits: $pass passed, $fail failed"
[ $fail -eq 0 ]
