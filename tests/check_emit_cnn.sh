#!/usr/bin/env bash
# cnnc --emit=cnn and back. The zoo's models (with --random-weights=0) and ONNX files made
# here (when a Python with onnx is given) are written in the cnnc language with their
# weights; read again, each gives the same graph up to names (--emit=ir with every node's
# op, attributes and shape, and each parameter's shape where it is used) at batch 1 and 2,
# `cnnc run` outputs that are bit-identical, and, for a few, a model.so whose outputs are
# too. Then the errors: a status of 1, a message, and no file left behind.
# Usage: check_emit_cnn.sh CNNC CNNRUN [PYTHON_WITH_ONNX]
set -u
cnnc=$1
cnnrun=$2
onnx_python=${3:-}
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
pass=0 fail=0
if ! command -v python3 > /dev/null; then
  echo "check_emit_cnn.sh: skipped, needs python3"
  exit 77
fi

ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# The --emit=ir text up to names: a line per node other than a parameter, its inputs by
# their position among those lines, a parameter by its type where it is used.
cat > "$tmp/norm.py" << 'EOF'
import re, sys
name = r'"(?:[^"\\]|\\.)*"'
node = re.compile(r'^  %(\d+) = ([a-z_0-9]+)(?:\(([^)]*)\))?( \{[^}]*\})?(?: ' + name + r')? : (\S+)$')
ret = re.compile(r'^  return %(\d+) ' + name + '$')
out, index, params = [], {}, {}
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    m, r = node.match(line), ret.match(line)
    if m:
        k, op, ins, attrs, ty = m.groups()
        if op == "param":
            params[k] = "param " + ty
            continue
        args = [params.get(a[1:]) or "%" + str(index[a[1:]]) for a in (ins or "").split(", ") if a]
        index[k] = len(index)
        out.append("%d = %s(%s)%s : %s" % (index[k], op, ", ".join(args), attrs or "", ty))
    elif r:
        out.append("return %" + str(index[r.group(1)]))
    elif not (line.startswith("graph ") or line == "}"):
        sys.exit("norm.py: cannot read: " + line)
print("\n".join(out))
EOF

# mknpy FILE DIMS...: a deterministic f32 .npy in [-1, 1).
mknpy() {
  python3 - "$@" << 'EOF'
import struct, sys
path, dims = sys.argv[1], [int(d) for d in sys.argv[2:]]
n = 1
for d in dims:
    n *= d
shape = "(%s%s)" % (", ".join(map(str, dims)), "," if len(dims) == 1 else "")
header = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape
header += " " * (63 - (10 + len(header)) % 64) + "\n"
s, vals = 12345, []
for _ in range(n):
    s = (s * 6364136223846793005 + 1442695040888963407) % 2**64
    vals.append((s >> 40) / 2**23 - 1)
with open(path, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<%df" % n, *vals))
EOF
}

# The input dims of MODEL at batch B (from its --emit=ir), as "B C H W".
input_dims() {
  "$cnnc" "$1" "${@:3}" --batch="$2" --emit=ir |
    sed -n 's/^  %0 = input "[^"]*" : f32\[\(.*\)\]$/\1/p' | tr ',' ' '
}

# roundtrip NAME MODEL RUN ARGS...: emits MODEL at batch 2 (ARGS bind its weights) into
# $tmp/NAME and compares the graphs at batch 1 and 2; RUN=run also compares `cnnc run` at
# both, RUN=so that and a model.so at batch 2.
roundtrip() {
  local name=$1 model=$2 run=$3; shift 3
  local dir=$tmp/$name stem
  stem=$(basename "${model%.*}")
  if ! "$cnnc" "$model" "$@" --batch=2 --emit=cnn -o "$dir" 2> "$tmp/err"; then
    bad "$name: --emit=cnn failed: $(head -3 "$tmp/err")"
    return
  fi
  local cnn=$dir/$stem.cnn weights=$dir/$stem.safetensors b
  for b in 1 2; do
    "$cnnc" "$model" "$@" --batch=$b --emit=ir > "$tmp/a.ir" &&
      "$cnnc" "$cnn" --weights="$weights" --batch=$b --emit=ir > "$tmp/b.ir" 2> "$tmp/err" &&
      python3 "$tmp/norm.py" "$tmp/a.ir" > "$tmp/a.n" &&
      python3 "$tmp/norm.py" "$tmp/b.ir" > "$tmp/b.n"
    if [ $? -ne 0 ]; then
      bad "$name: batch $b: reading it back failed: $(head -3 "$tmp/err")"
    elif ! cmp -s "$tmp/a.n" "$tmp/b.n"; then
      bad "$name: batch $b: the graph read back differs:"
      diff "$tmp/a.n" "$tmp/b.n" | head -6 | sed 's/^/    /'
    else
      ok
    fi
    [ "$run" = ir ] && continue
    # shellcheck disable=SC2046
    mknpy "$tmp/x.npy" $(input_dims "$model" $b "$@")
    rm -f "$tmp"/a*.npy "$tmp"/b*.npy
    if "$cnnc" run "$model" "$@" --batch=$b --input="$tmp/x.npy" -o "$tmp/a.npy" &&
       "$cnnc" run "$cnn" --weights="$weights" --batch=$b --input="$tmp/x.npy" -o "$tmp/b.npy"; then
      same_outputs "$name: batch $b: cnnc run"
    else
      bad "$name: batch $b: cnnc run failed"
    fi
    [ "$run" = so ] && [ $b = 2 ] && same_so "$name" "$model" "$cnn" "$weights" "$@"
  done
  rm -rf "$dir"
}

# output_files X IR: the .npy files `-o X.npy` makes for the outputs of IR, in order.
output_files() {
  local names
  names=$(sed -n 's/^  return %[0-9]* "\(.*\)"$/\1/p' "$2")
  if [ "$(echo "$names" | wc -l)" -eq 1 ]; then echo "$tmp/$1.npy"; return; fi
  echo "$names" | sed "s|^|$tmp/$1.|; s|\$|.npy|"
}

# same_outputs WHAT: the outputs of a.ir in $tmp/a*.npy and those of b.ir in $tmp/b*.npy
# (the same outputs, maybe named otherwise) hold the same bytes.
same_outputs() {
  local n=0 diffs=0 fa fb
  while read -r fa <&3 && read -r fb <&4; do
    n=$((n + 1))
    cmp -s "$fa" "$fb" || diffs=$((diffs + 1))
  done 3< <(output_files a "$tmp/a.ir") 4< <(output_files b "$tmp/b.ir")
  if [ $n -gt 0 ] && [ $diffs -eq 0 ]; then ok; else bad "$1: $diffs of $n outputs differ"; fi
}

# same_so NAME MODEL CNN WEIGHTS ARGS...: both compiled at batch 2 with the same options
# run to the same bytes.
same_so() {
  local name=$1 model=$2 cnn=$3 weights=$4; shift 4
  rm -f "$tmp"/a*.npy "$tmp"/b*.npy
  if "$cnnc" "$model" "$@" --batch=2 -o "$tmp/a.so" &&
     "$cnnc" "$cnn" --weights="$weights" --batch=2 -o "$tmp/b.so" &&
     "$cnnrun" "$tmp/a.so" --threads 1 --input "$tmp/x.npy" --output "$tmp/a.npy" > /dev/null &&
     "$cnnrun" "$tmp/b.so" --threads 1 --input "$tmp/x.npy" --output "$tmp/b.npy" > /dev/null; then
    same_outputs "$name: model.so"
  else
    bad "$name: compiling or running model.so failed"
  fi
}

# ---- the zoo: every graph; the smaller models also run -----------------------------------
for model in models/*.cnn; do
  name=$(basename "$model" .cnn)
  case $name in
    mnist_cnn) run=so ;;
    mlp | squeezenet1_1 | shufflenet_v2_x1_0 | mobilenet_v3_large) run=run ;;
    *) run=ir ;;
  esac
  roundtrip "$name" "$model" $run --random-weights=0
done

# ---- ONNX files made here: every op the importer maps, names the language cannot hold ----
if [ -n "$onnx_python" ] && "$onnx_python" -c "import onnx, numpy" 2> /dev/null; then
  "$onnx_python" - "$tmp" << 'EOF'
import os, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
out = sys.argv[1]
rng = np.random.default_rng(0)


def model(name, nodes, inits, inputs, outputs, opset=20):
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(out, name.replace(" ", "_") + ".onnx"))


def ops_model():
    """Every op the importer maps onto a node of its own, in one graph. The names hold
    characters a layer name cannot ('.', space, quotes, braces), two of them become the
    same, an initializer is the weight of two convolutions and one is a tensor
    multiplied in, and two outputs are one value, one of them named 'return'."""
    inits, nodes = [], []

    def init(name, shape, positive=False):
        a = rng.standard_normal(shape).astype(np.float32)
        inits.append(numpy_helper.from_array(np.abs(a) + 0.5 if positive else a, name))
        return name

    def const(name, value, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def node(op, ins, name, **attrs):
        nodes.append(helper.make_node(op, ins, [name + ":out"], name=name, **attrs))
        return name + ":out"

    w = init("conv.w", (8, 4, 3, 3))
    c1 = node("Conv", ["input.1", w, init("conv.b", (8,))], "conv.a b", kernel_shape=[3, 3],
              pads=[1, 1, 1, 1])
    bn = node("BatchNormalization", [c1, init("bn.s", (8,)), init("bn.b", (8,)), init("bn.m", (8,)),
                                     init("bn.v", (8,), True)], "bn{1}", epsilon=1e-3)
    r = node("Relu", [bn], 'q"uote')
    c2 = node("Conv", ["input.1", w], "x.y", kernel_shape=[3, 3], pads=[2, 2, 2, 2],
              dilations=[2, 2])
    c3 = node("Conv", [r, init("g.w", (8, 4, 3, 3))], "x_y", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
              group=2, strides=[1, 1])
    s = node("Add", [c2, c3], "sum")
    mp = node("MaxPool", [s], "mp", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
              ceil_mode=1)
    ap = node("AveragePool", [s], "ap", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
              count_include_pad=0, ceil_mode=1)
    cl = node("Clip", [mp, const("lo", -1.0), const("hi", 2.0)], "clip")
    lk = node("LeakyRelu", [ap], "leaky", alpha=0.2)
    x = node("Concat", [cl, lk], "cat", axis=1)
    cat = x
    for op in ["HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "Abs", "Sqrt", "Erf", "Exp"]:
        x = node(op, [x], op.lower())
    x = node("Mul", [x, const("k3", 3.0)], "mul3")
    x = node("Add", [x, const("k1", -0.25)], "add")
    x = node("Div", [x, const("k7", 7.0)], "div7")
    x = node("Neg", [x], "neg")
    x = node("Sub", [const("k2", 2.0), x], "rsub")
    ms = node("Mul", [x, init("scale", (16, 1, 1))], "layer.scale")
    x = node("Div", [ms, node("Add", [node("Abs", [cat], "abs2"), const("one", 1.0)], "plus1")],
             "div")
    x = node("Sub", [x, ms], "sub")
    x = node("Slice", [x, const("st", [2], np.int64), const("en", [12], np.int64),
                       const("ax", [1], np.int64)], "slice")
    x = node("Pad", [x, const("pads", [0, 0, 1, 2, 0, 0, 2, 1], np.int64), const("pv", 0.5)], "pad")
    x = node("Transpose", [x], "to_nhwc", perm=[0, 2, 3, 1])
    x = node("LayerNormalization", [x, init("ln.w", (10,)), init("ln.b", (10,))], "ln", axis=-1,
             epsilon=1e-6)
    x = node("Add", [node("MatMul", [x, init("fc1.w", (10, 12))], "fc1"), init("fc1.b", (12,))],
             "fc1.bias")
    x = node("Gelu", [x], "gelu", approximate="tanh")
    x = node("Gelu", [x], "gelu_erf")
    feat = node("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2])
    x = node("Softmax", [feat], "softmax", axis=1)
    x = node("Dropout", [x], "drop")
    x = node("Flatten", [node("GlobalAveragePool", [x], "gap")], "flat", axis=1)
    nodes.append(helper.make_node("Gemm", [x, init("fc.w", (5, 12)), init("fc.b", (5,))],
                                  ["logits"], name="fc", transB=1))
    nodes.append(helper.make_node("Identity", [feat], ["feat.map"], name="id"))
    nodes.append(helper.make_node("Identity", [feat], ["return"], name="id2"))
    model("ops graph", nodes, inits,
          [helper.make_tensor_value_info("input.1", F, ["batch", 4, 12, 12])],
          [helper.make_tensor_value_info("logits", F, ["batch", 5])] +
          [helper.make_tensor_value_info(n, F, ["batch", 12, 10, 10])
           for n in ["feat.map", "return"]])


def nan_model():
    """LeakyRelu's alpha NaN: a graph the language cannot write."""
    model("nan", [helper.make_node("LeakyRelu", ["x"], ["y"], name="lk", alpha=float("nan"))], [],
          [helper.make_tensor_value_info("x", F, ["n", 4])],
          [helper.make_tensor_value_info("y", F, ["n", 4])], opset=17)


def clip_model():
    """Clip with a bound left open (infinite) and one of -0."""
    nodes = [helper.make_node("Clip", ["x", "", "hi"], ["c"], name="clip open"),
             helper.make_node("Clip", ["c", "lo"], ["y"], name="clip -0")]
    inits = [numpy_helper.from_array(np.array(0.5, np.float32), "hi"),
             numpy_helper.from_array(np.array(-0.0, np.float32), "lo")]
    model("clip", nodes, inits, [helper.make_tensor_value_info("x", F, ["n", 3, 4, 4])],
          [helper.make_tensor_value_info("y", F, ["n", 3, 4, 4])], opset=17)


ops_model()
nan_model()
clip_model()
EOF
  if [ $? -ne 0 ]; then
    bad "making the ONNX files failed"
  else
    roundtrip onnx_ops "$tmp/ops_graph.onnx" so
    roundtrip onnx_clip "$tmp/clip.onnx" run
    # Names the language cannot hold are replaced, and kept unique; outputs keep theirs
    # where they are identifiers.
    "$cnnc" "$tmp/ops_graph.onnx" --batch=1 --emit=cnn -o "$tmp/ops"
    text=$tmp/ops/ops_graph.cnn
    for want in 'network ops_graph(input_1: f32[N=1, 4, 12, 12])' 'as "conv_a_b"' 'as "bn_1_"' \
                'as "q_uote"' 'as "x_y"' 'as "x_y_2"' 'parameter([16, 1, 1]) as "scale"' \
                'affine(' 'slice(' 'logits = ' 'gelu(' 'approximate="tanh"'; do
      if grep -qF -- "$want" "$text"; then ok; else bad "ops_graph.cnn lacks: $want"; fi
    done
    if grep -q '^  return logits, v[0-9]*, v[0-9]*_out$' "$text"; then ok
    else bad "ops_graph.cnn: unexpected $(grep return "$text")"; fi
    "$cnnc" "$tmp/clip.onnx" --batch=1 --emit=cnn -o "$tmp/clip"
    if grep -qF 'clip(x, -1e39, 0.5)' "$tmp/clip/clip.cnn" &&
       grep -qF 'clip(v1, -0.0, 1e39)' "$tmp/clip/clip.cnn"; then ok
    else bad "clip.cnn: $(grep clip "$tmp/clip/clip.cnn")"; fi
    msg="nan.onnx: error: cannot write leaky_relu 'lk' in the cnnc language: its alpha is NaN"
    "$cnnc" "$tmp/nan.onnx" --batch=1 --emit=cnn -o "$tmp/nan" > /dev/null 2> "$tmp/err"
    if [ $? -eq 1 ] && grep -qF "$msg" "$tmp/err" &&
       [ ! -e "$tmp/nan" ]; then ok
    else bad "a NaN attribute: $(cat "$tmp/err")"; fi
  fi
else
  echo "check_emit_cnn.sh: no Python with onnx given, the ONNX round trips are skipped"
fi

# ---- errors --------------------------------------------------------------------------------
# expect STATUS MESSAGE ARGS...: cnnc's status, and MESSAGE in its standard error.
expect() {
  local want=$1 msg=$2; shift 2
  "$cnnc" "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  if [ $rc -ne "$want" ] || { [ -n "$msg" ] && ! grep -qF -- "$msg" "$tmp/err"; }; then
    bad "cnnc $* -> status $rc (want $want), expected to see: $msg"
    sed 's/^/    /' "$tmp/err" | head -4
  else
    ok
  fi
}
m=models/mnist_cnn.cnn
w="--random-weights=0"
expect 1 "cnnc: error: --emit=cnn writes two files, MODEL.cnn and MODEL.safetensors: give -o DIR" \
  $m $w --emit=cnn
expect 1 "give -o DIR" $m $w --emit=cnn -o -
expect 1 "cnnc: error: --emit is not an option of 'cnnc run'" run $m --emit=cnn -o "$tmp/r"
expect 1 "cnnc: error: model has parameters; give --weights=FILE or --random-weights=SEED" \
  $m --emit=cnn -o "$tmp/noweights"
[ -e "$tmp/noweights" ] && bad "a folder was made for a model without weights" || ok
touch "$tmp/file"
expect 1 "cnnc: error: -o '$tmp/file' is not a folder" $m $w --emit=cnn -o "$tmp/file"
expect 1 "cnnc: error: cannot make the folder '$tmp/no/such': No such file or directory" \
  $m $w --emit=cnn -o "$tmp/no/such"
expect 0 "" $m $w --emit=cnn -o "$tmp/m"
# Never over the files it reads.
expect 1 "would write '$tmp/m/mnist_cnn.cnn' over '$tmp/m/mnist_cnn.cnn', which it reads" \
  "$tmp/m/mnist_cnn.cnn" --weights="$tmp/m/mnist_cnn.safetensors" --emit=cnn -o "$tmp/m"
mkdir "$tmp/src" && cp "$tmp/m/mnist_cnn.cnn" "$tmp/src/"
expect 1 "would write '$tmp/m/mnist_cnn.safetensors' over '$tmp/m/mnist_cnn.safetensors'" \
  "$tmp/src/mnist_cnn.cnn" --weights="$tmp/m/mnist_cnn.safetensors" --emit=cnn -o "$tmp/m"
# A write that fails (past `ulimit -f`) leaves neither file, nor a folder it made.
msg="$tmp/full/mnist_cnn.safetensors: error: cannot write: File too large"
(ulimit -f 64; "$cnnc" $m $w --emit=cnn -o "$tmp/full") > /dev/null 2> "$tmp/err"
if [ $? -eq 1 ] && grep -qF "$msg" "$tmp/err" &&
   [ ! -e "$tmp/full" ]; then ok
else bad "a failed write: $(cat "$tmp/err")"; ls -A "$tmp/full" 2> /dev/null; fi
mkdir "$tmp/keep"
(ulimit -f 64; "$cnnc" $m $w --emit=cnn -o "$tmp/keep") > /dev/null 2>&1
if [ -d "$tmp/keep" ] && [ -z "$(ls -A "$tmp/keep")" ]; then ok
else bad "a failed write into a folder left: $(ls -A "$tmp/keep")"; fi
# An existing pair is replaced whole.
expect 0 "" models/mlp.cnn --random-weights=1 --emit=cnn -o "$tmp/m"
expect 0 "" models/mlp.cnn --random-weights=2 --emit=cnn -o "$tmp/m"
leftover=$(ls -A "$tmp/m" | grep -v '^\(mnist_cnn\|mlp\)\.\(cnn\|safetensors\)$')
[ -z "$leftover" ] && ok || bad "temporaries left: $leftover"

# The two layers --emit=cnn needs, and their errors.
cat > "$tmp/layers.cnn" << 'EOF'
network layers(x: f32[N=1, 6, 4, 4]) {
  a = affine(x, scale=0.5, shift=-1) as a
  b = slice(a, 2, 5) as b
  return slice(b, 1, 3, axis=-1) as c
}
EOF
expect 0 "" "$tmp/layers.cnn" --emit=ir
for want in 'affine(%0) {scale=0.5, shift=-1} "a" : f32[1,6,4,4]' \
            'slice(%1) {axis=1, start=2, end=5} "b" : f32[1,3,4,4]' \
            'slice(%2) {axis=-1, start=1, end=3} "c" : f32[1,3,4,2]'; do
  grep -qF -- "$want" "$tmp/out" && ok || bad "layers.cnn: no $want in $(cat "$tmp/out")"
done
printf 'network t(x: f32[N=1, 6, 4, 4]) {\n  return affine(x, scale=1e39)\n}\n' > "$tmp/t1.cnn"
expect 1 "t1.cnn:2:26: error: scale 1e+39 is not a finite f32" "$tmp/t1.cnn" --emit=ir
printf 'network t(x: f32[N=1, 6, 4, 4]) {\n  return slice(x, 2, 7)\n}\n' > "$tmp/t2.cnn"
expect 1 "error: slice [2, 7) is not a non-empty range of dim 1 of f32[1,6,4,4]" \
  "$tmp/t2.cnn" --emit=ir
printf 'network t(x: f32[N=1, 6, 4, 4]) {\n  return slice(x, 0, 2, axis=0)\n}\n' > "$tmp/t3.cnn"
expect 1 "error: slice axis 0 is out of range for f32[1,6,4,4] (it must not be the batch dim)" \
  "$tmp/t3.cnn" --emit=ir

echo "check_emit_cnn.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
