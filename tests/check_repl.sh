#!/usr/bin/env bash
# cnnc repl without a terminal (scripts on standard input and -c): loading, statements,
# running, values against `cnnc run` and PyTorch's digit classes, the IR, LLVM IR and
# assembly of a kernel, profile, memory plan, :compare, :export (the model.so's output
# equals the JIT's bit for bit, through cnnrun) and errors that leave the session going.
set -u
cnnc=$1 cnnrun=$2
py=/usr/bin/python3
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HOME=$tmp CNNC_HISTORY=
pass=0 fail=0
mnist="models/mnist_cnn.cnn --weights=models/mnist_cnn.safetensors"

check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}
has() { grep -qF -- "$2" "$tmp/$1"; }            # has FILE TEXT
hasnt() { ! grep -qF -- "$2" "$tmp/$1"; }
# session NAME WANT_STATUS < script: runs it; NAME.out, NAME.err, NAME.all (both).
session() {
  "$cnnc" repl "${@:3}" > "$tmp/$1.out" 2> "$tmp/$1.err"
  local rc=$?
  cat "$tmp/$1.out" "$tmp/$1.err" > "$tmp/$1.all"
  check "session $1 exits with $2 (got $rc)" [ "$rc" -eq "$2" ]
  if [ "$rc" -ne "$2" ]; then sed 's/^/    /' "$tmp/$1.err" | head -20; fi
}
# close A.npy B.npy RTOL: equal within RTOL of B's largest magnitude
close() {
  "$py" -c "import numpy as n,sys; a=n.load(sys.argv[1]); b=n.load(sys.argv[2]);
sys.exit(0 if a.shape==b.shape and abs(a-b).max() <= float(sys.argv[3])*abs(b).max() else 1)" "$@"
}

# ---- the trained MNIST network on held-out digit 5 --------------------------------
session run 0 <<EOF
:load $mnist
:input image models/digits/images.npy 5
:run
:print fc2 all
:top 1
:save fc2 $tmp/jit.npy
:save image $tmp/in.npy
:export $tmp/mnist.so
:threads 1
:run
:save fc2 $tmp/jit1.npy
EOF
want=$(sed -n 's/^predictions //p' models/digits/expected.txt | cut -d' ' -f6)
check "load summary" has run.out "mnist_cnn: input image f32[1,1,28,28] -> output fc2 f32[1,10]"
check ":top 1 gives PyTorch's class $want" has run.out "fc2[0] top-1: $want ("
check "no prompt without a terminal" hasnt run.out "cnnc>"
"$cnnc" run $mnist --input="$tmp/in.npy" -o "$tmp/ref.npy"
check ":save of the output matches cnnc run's (interpreter) output" close "$tmp/jit.npy" "$tmp/ref.npy" 1e-4
# The ten values :print shows are the output's values.
sed -n '/^fc2: .*(output of the compiled model)/,/^  \[8\]/p' "$tmp/run.out" |
  sed -n 's/^  \[[0-9]*\] //p' | tr ' ' '\n' | grep . > "$tmp/printed.txt"
check ":print shows 10 values" [ "$(wc -l < "$tmp/printed.txt")" -eq 10 ]
check ":print values match cnnc run" "$py" -c "import numpy as n,sys
a=n.loadtxt(sys.argv[1]); b=n.load(sys.argv[2]).ravel()
sys.exit(0 if a.shape==b.shape and abs(a-b).max() <= 1e-4*abs(b).max() else 1)" \
  "$tmp/printed.txt" "$tmp/ref.npy"
"$cnnrun" "$tmp/mnist.so" --input "$tmp/in.npy" --output "$tmp/so.npy" > /dev/null
"$cnnc" $mnist -o "$tmp/cnnc.so"
check ":export writes the bytes cnnc -o writes" cmp -s "$tmp/mnist.so" "$tmp/cnnc.so"
check ":export'ed model.so computes the JIT's output bit for bit" cmp -s "$tmp/jit.npy" "$tmp/so.npy"
check "one thread computes the same output" cmp -s "$tmp/jit.npy" "$tmp/jit1.npy"

# ---- all 360 digits at once: every class as PyTorch's --------------------------------
session digits 0 -c ":load $mnist --batch=360; :input image models/digits/images.npy; :top 1"
sed -n 's/^fc2\[[0-9]*\] top-1: \([0-9]*\) .*/\1/p' "$tmp/digits.out" | tr '\n' ' ' > "$tmp/classes"
check "360 classes equal PyTorch's" [ "$(cat "$tmp/classes")" = \
  "$(sed -n 's/^predictions //p' models/digits/expected.txt) " ]

# --random-weights: the parameters `cnnc run --random-weights` makes.
session seed 0 -c ":load models/mlp.cnn --random-weights=7; :save fc3 $tmp/r7.npy"
"$cnnc" run models/mlp.cnn --random-weights=7 -o "$tmp/c7.npy"
check ":load --random-weights=7 = cnnc run's" close "$tmp/r7.npy" "$tmp/c7.npy" 1e-4

# ---- a network typed statement by statement -----------------------------------------
cat > "$tmp/small.cnn" <<'EOF'
network small(image: f32[N=1, 1, 28, 28]) {
  x = relu(conv2d(image, 8, kernel=3) as conv1)
  y = maxpool(x,
    kernel=2)
  return dense(flatten(y), 10) as fc
}
EOF
session stmts 1 <<'EOF'
block twice(x) { return relu(relu(x)) }
:new small(image: f32[N=1, 1, 28, 28])
x = relu(conv2d(image, 8, kernel=3) as conv1)
y = maxpool(x,
  kernel=2)
w = relu(frob(y))
q = dense(y, 10, in_features=3)
:frobnicate
return dense(flatten(y), 10) as fc
t = twice(y)
:print conv1 0:3
:compare
EOF
check "statement echoes its shape" has stmts.out "x: f32[1, 8, 26, 26]"
check "continued statement echoes its shape" has stmts.out "y: f32[1, 8, 13, 13]"
check "unknown layer: located error" has stmts.err "<stdin>:6:10: error: unknown layer or block 'frob'"
check "shape error: located error" has stmts.err "<stdin>:7:5: error: dense expects a 2-d input"
check "unknown command: error naming it" has stmts.err "error: :frobnicate: unknown command"
check "the session goes on after errors" has stmts.out "output fc: f32[1, 10]"
check "a block defined before :new" grep -qx "t: f32\[1, 8, 13, 13\]" "$tmp/stmts.out"
check ":print of a node from the interpreter" has stmts.out "conv1: f32[1,8,26,26]  (reference interpreter)"
# 6 values where the layout pass blocks conv1's 8 channels (8-lane vectors) and adds a
# reorder before flatten; 5 with 16-lane vectors, where they stay plain.
check ":compare of a typed network" grep -Eqx "all [56] values agree" "$tmp/stmts.out"

# The same network as a file, through `cnnc run`: the REPL's defaults (weights and
# input from seed 0) give the interpreter's values exactly.
session stmts2 0 <<EOF
:new small(image: f32[N=1, 1, 28, 28])
x = relu(conv2d(image, 8, kernel=3) as conv1)
y = maxpool(x, kernel=2)
return dense(flatten(y), 10) as fc
:save fc $tmp/stmt_fc.npy
:save x $tmp/stmt_x.npy
:print x
EOF
"$cnnc" run "$tmp/small.cnn" -o "$tmp/file_fc.npy"
check "typed network = the file's network (cnnc run)" close "$tmp/stmt_fc.npy" "$tmp/file_fc.npy" 1e-4
sed 's/return dense.*/return x/' "$tmp/small.cnn" > "$tmp/small_x.cnn"
"$cnnc" run "$tmp/small_x.cnn" -o "$tmp/file_x.npy"
check "a variable's value (interpreter) = cnnc run's" close "$tmp/stmt_x.npy" "$tmp/file_x.npy" 1e-6
check ":print of a variable" has stmts2.out "x: f32[1,8,26,26]  (reference interpreter)"

# -c: commands and statements on one line, ';' between them.
session inline 0 -c ':new tiny(v: f32[1, 4]); y = relu(v); z = sigmoid(y); :input v random 1
:print v all; :print y all'
check "-c: statements echo" grep -qx "y: f32\[1, 4\]" "$tmp/inline.out"
check "-c: two statements on a line" grep -qx "z: f32\[1, 4\]" "$tmp/inline.out"
check "-c: y = relu(v) in values" awk '/^  \[0\]/ { r[n++] = $0 } END {
  split(r[0], v); split(r[1], y); for (i = 2; i <= 5; i++) if (y[i] != (v[i] > 0 ? v[i] : 0)) exit 1;
  exit n != 2 }' "$tmp/inline.out"

# ---- IR, passes, LLVM IR, assembly, dot ---------------------------------------------
session ir 1 <<EOF
:load $mnist
:ir
:ir after fuse
:llvm conv1
:asm conv2
:llvm relu_0
:asm nosuch
:dot $tmp/g.dot
:cuda conv1
:cuda conv2
:cuda relu_0
:ptx fc1
:passes disable layout
:passes disable fuse
:ir opt
:compare
EOF
check ":ir prints the graph" has ir.out "%4 = relu(%3) \"relu_0\" : f32[1,32,26,26]"
check ":ir after fuse shows the fused relu" has ir.out "groups=1, act=relu} \"conv1\""
check ":llvm prints the kernel function" has ir.out "define internal void @conv1(ptr"
check ":asm starts at the kernel's label" grep -qx "conv2:" "$tmp/ir.out"
check ":asm ends at its .size" has ir.out $'\t.size\tconv2, '
check ":asm prints only that kernel" bash -c "! grep -qxE '(conv1|maxpool_0|fc1|fc2|run):' '$tmp/ir.out'"
"$cnnc" $mnist --emit=llvm | sed -n '/^define internal void @conv1(/,/^}/p' > "$tmp/conv1.ll"
"$cnnc" $mnist --emit=asm | sed -n '/^conv2:/,/^\t\.size\tconv2,/p' > "$tmp/conv2.s"
check "cnnc --emit=llvm|asm have conv1 and conv2" test -s "$tmp/conv1.ll" -a -s "$tmp/conv2.s"
check ":llvm is the function of cnnc --emit=llvm" \
  cmp -s "$tmp/conv1.ll" <(sed -n '/^define internal void @conv1(/,/^}/p' "$tmp/ir.out")
check ":asm is the function of cnnc --emit=asm" \
  cmp -s "$tmp/conv2.s" <(sed -n '/^conv2:/,/^\t\.size\tconv2,/p' "$tmp/ir.out")
check ":llvm of a fused node explains" has ir.err "error: :llvm: node 'relu_0' has no kernel: the passes fused it"
check ":asm of an unknown node" has ir.err "error: :asm: no node 'nosuch'"
check ":cuda: the kernel's launch" grep -qE "^// conv1 \(conv2d\+bias\+relu\): grid [0-9]+ x" "$tmp/ir.out"
# conv2's reduction is split: both of its kernels are shown
check ":cuda: a split node's two kernels" grep -qE "^// conv2 \(conv2d\(split-K=2\)\): grid [0-9]+ x" "$tmp/ir.out"
check ":cuda: a split node's sum" grep -qE "^// conv2 \(split-K-sum\+bias\+relu\): grid [0-9]+ x" "$tmp/ir.out"
check ":cuda: the kernel's CUDA C" grep -qE '^extern "C" __global__ void .*\(float' "$tmp/ir.out"
check ":cuda of a fused node explains" has ir.err "error: :cuda: node 'relu_0' has no kernel"
# The PTX needs NVRTC, found at build time or not.
if grep -q "^// fc1 (dense+bias+relu)" "$tmp/ir.out"; then
  check ":ptx: the kernel's entry" grep -qE '^\.visible \.entry [a-z0-9_]*fc1\($' "$tmp/ir.out"
else
  check ":ptx without NVRTC says so" has ir.err "error: :ptx: this cnnc was built without NVRTC"
fi
check ":dot writes Graphviz" grep -q "digraph" "$tmp/g.dot"
check "required pass cannot be disabled" has ir.err "error: :passes: pass 'layout' is required"
check ":passes lists fuse off" grep -qE "^  fuse +off" "$tmp/ir.out"
check "without fuse, relu stays a node" grep -qE 'relu\(%[0-9]+\) "relu_0" : f32\[1,32,26,26\]@nchw' "$tmp/ir.out"
check ":compare without fuse" has ir.out "all 11 values agree"

# ---- profile, memory plan, timing, compare --------------------------------------------
session perf 0 -c ":load $mnist; :profile 3; :mem; :time 3; :time compile; :compare"
# conv2 (3×3, stride 1, blocked) runs the direct or the Winograd kernel, as the cost model decides
check ":profile lists conv2" awk 'NF == 5 && $1 == "conv2" && ($2 == "conv2d+bias+relu" ||
  $2 == "conv2d.winograd+bias+relu" || $2 == "conv2d.winograd2+bias+relu") { f = 1 }
  END { exit !f }' "$tmp/perf.out"
for k in "conv1 conv2d+bias+relu" "maxpool_0 maxpool" \
         "fc1 dense+bias+relu" "fc2 dense+bias"; do
  check ":profile lists $k" awk -v k="$k" 'NF == 5 && $1 " " $2 == k { f = 1 } END { exit !f }' \
    "$tmp/perf.out"
done
check ":profile shares add up to 100%" awk '/%$/ && NF == 5 { s += $5 } END { exit !(s > 99 && s < 101) }' "$tmp/perf.out"
check ":profile summary" grep -qE "^6 kernels: .* ms/run in kernels" "$tmp/perf.out"
arena=$(sed -n 's/^arena_bytes //p' "$tmp/perf.out")
check ":mem arena size" has perf.out "peak activation memory (arena): $arena bytes"
check ":mem offsets and lifetimes" grep -qE "^%3 +conv1 +conv2d +arena +[0-9]+ +86528  3\.\.6 " "$tmp/perf.out"
check ":time latency" grep -qE "^latency over 3 runs, [0-9]+ threads: median [0-9.]+ ms  p90" "$tmp/perf.out"
for phase in "frontend" "passes" "LLVM lowering + optimization" "object code + JIT link"; do
  check ":time compile: $phase" grep -qF "  $phase " "$tmp/perf.out"
done
check ":compare: every node agrees" has perf.out "all 8 values agree"
check ":compare: output against the unoptimized graph" grep -qE "^  fc2 +max abs err" "$tmp/perf.out"

# ---- errors of commands: named, and the session goes on ---------------------------------
session errors 1 -c ":load $tmp/nothing.onnx; :load; :cuda conv1; :target cuda; \
:time 0; :print; :print fc2 99:100; :input image $tmp/missing.npy; :q; :print fc2"
check "ONNX file missing" has errors.err "$tmp/nothing.onnx: error: cannot read the model: No such file or directory"
check "no file" has errors.err "error: :load: which file?"
check ":cuda without a network" has errors.err "error: :cuda: no network"
check ":target cuda" has errors.err "error: :target: the REPL runs networks on the CPU"
check ":time 0" has errors.err "error: :time: expected a number of runs"
check ":print without a network" has errors.err "error: :print: no network"
check ":quit stops the script" [ "$(grep -c "error: :print" "$tmp/errors.err")" -eq 2 ]
session clean 0 -c ":help; :help load; :passes"
check ":help lists the commands" has clean.out ":compare [TOL]"
check ":help states the exit status" has clean.out "the exit status is 1 if any command or"

echo "check_repl: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
