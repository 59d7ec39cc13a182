#!/usr/bin/env bash
# CUDA model.so from the driver: `cnnc --target=cuda -o` links the runtime with the
# GPU image of runtime/rt_gpu.h as the hidden symbol cnnc_gpu_image; two builds are
# the same bytes; only cnn_* is exported and nothing of CUDA is linked (the runtime
# opens the driver itself); the image header names the architecture and math mode
# asked for and sizes that fit the model; failures leave no file behind.
# usage: check_cuda_so.sh CNNC    (status 77: skipped, this cnnc has no NVRTC)
set -u
cnnc=$1
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if "$cnnc" models/mlp.cnn --random-weights=0 --emit=ptx 2>&1 >/dev/null |
     grep -q "without NVRTC"; then
  echo "SKIP: this cnnc was built without NVRTC, so it cannot build a CUDA model.so"; exit 77
fi
fail=0
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# Prints the image's header fields as NAME=VALUE lines, and checks what a loader relies
# on: the symbol 64-byte aligned and as large as the image, PTX and cubin as NVRTC makes them.
header() {
  /usr/bin/python3 - "$1" <<'EOF'
import struct, sys
data = open(sys.argv[1], 'rb').read()
shoff, = struct.unpack_from('<Q', data, 0x28)
shnum, = struct.unpack_from('<H', data, 0x3c)
secs = [struct.unpack_from('<IIQQQQIIQQ', data, shoff + 64 * i) for i in range(shnum)]
symtab = next(s for s in secs if s[1] == 2)
strtab = secs[symtab[6]]
def name(off):
    at = strtab[4] + off
    return data[at:data.index(b'\0', at)].decode()
syms = [struct.unpack_from('<IBBHQQ', data, symtab[4] + 24 * i) for i in range(symtab[5] // 24)]
sym = next(s for s in syms if s[0] and name(s[0]) == 'cnnc_gpu_image')
sec = secs[sym[3]]
base = sec[4] + sym[4] - sec[3]
fields = ('magic version arch math ninputs noutputs nkernels nfunctions nargs image_bytes '
          'arena_bytes tensors functions kernels args outputs strings strings_bytes ptx ptx_bytes '
          'cubin cubin_bytes weights weights_bytes').split()
h = dict(zip(fields, struct.unpack_from('<8sIIIiiiii15Q', data, base)))
h['magic'] = h['magic'].decode('latin-1').rstrip('\0')
h['symbol_aligned'] = int(sym[4] % 64 == 0)
h['symbol_size_ok'] = int(sym[5] == h['image_bytes'])
ptx = data[base + h['ptx']:base + h['ptx'] + h['ptx_bytes']]
h['ptx_ok'] = int(ptx.endswith(b'\0') and b'.entry' in ptx and
                  (b'.target sm_%d' % h['arch']) in ptx)
h['cubin_ok'] = int(data[base + h['cubin']:base + h['cubin'] + 4] == b'\x7fELF')
h['aligned'] = int(all(h[k] % 8 == 0 for k in fields[11:] if not k.endswith('_bytes')) and
                   h['weights'] % 256 == 0)
for k, v in h.items():
    print('%s=%s' % (k, v))
EOF
}

# expect_field SO NAME VALUE: the header field NAME of SO's image is VALUE.
expect_field() {
  local got
  got=$(header "$1" | sed -n "s/^$2=//p")
  [ "$got" = "$3" ] || bad "$(basename "$1"): $2 is '$got', expected '$3'"
}

# build NAME MODEL ARGS...: builds $tmp/NAME.so, and checks its exports, libraries and image.
build() {
  local name=$1 so="$tmp/$1.so" model=$2
  shift 2
  if ! "$cnnc" "models/$model.cnn" --random-weights=1 --target=cuda -o "$so" "$@" \
       2> "$tmp/err"; then
    bad "cnnc $model --target=cuda $*:"; head -20 "$tmp/err"; return
  fi
  local other
  other=$(nm -D --defined-only "$so" | awk '$3 !~ /^cnn_/ {print $3}')
  [ -z "$other" ] || bad "$name.so exports more than cnn_*: $other"
  nm -D --defined-only "$so" | grep -q ' T cnn_model_create$' || bad "$name.so lacks cnn_model_create"
  other=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
          grep -Ev '^(libc|libm|libpthread|libdl)\.so|^ld-linux')
  [ -z "$other" ] || bad "$name.so needs $other"
  # local: read-only, or (the bytes written into the linked file) data
  nm "$so" | grep -qE ' [rd] cnnc_gpu_image$' || bad "$name.so has no local cnnc_gpu_image"
  nm "$so" | grep -q ' cnnc_model$' && bad "$name.so defines cnnc_model"
  for f in magic=CNNCGPU version=1 symbol_aligned=1 symbol_size_ok=1 ptx_ok=1 cubin_ok=1 \
           aligned=1; do
    expect_field "$so" "${f%%=*}" "${f#*=}"
  done
}

# mnist_cnn: 1,199,882 parameters, padded for the kernels to less than twice their bytes.
build mnist mnist_cnn
build mnist2 mnist_cnn
build mnist_f32 mnist_cnn --gpu-math=f32
build mnist_sm90 mnist_cnn --gpu-arch=sm_90
cmp -s "$tmp/mnist.so" "$tmp/mnist2.so" || bad "two builds of mnist_cnn differ"
cmp -s "$tmp/mnist.so" "$tmp/mnist_f32.so" && bad "the f32 build is the tf32 build"
# 5 layers, conv2's reduction split in two kernels
for f in arch=80 math=0 ninputs=1 noutputs=1 nkernels=6; do
  expect_field "$tmp/mnist.so" "${f%%=*}" "${f#*=}"
done
expect_field "$tmp/mnist_f32.so" math 1
expect_field "$tmp/mnist_f32.so" arch 80
expect_field "$tmp/mnist_sm90.so" arch 90
expect_field "$tmp/mnist_sm90.so" math 0
wb=$(header "$tmp/mnist.so" | sed -n 's/^weights_bytes=//p')
if [ -z "$wb" ] || [ "$wb" -lt 4799528 ] || [ "$wb" -ge 9599056 ]; then
  bad "mnist_cnn weights are $wb bytes"
fi
nf=$(header "$tmp/mnist.so" | sed -n 's/^nfunctions=//p')
if [ -z "$nf" ] || [ "$nf" -lt 1 ] || [ "$nf" -gt 6 ]; then bad "mnist_cnn has $nf functions"; fi

build mlp mlp
expect_field "$tmp/mlp.so" ninputs 1
expect_field "$tmp/mlp.so" noutputs 1

# Failures: exit status 1, an error on stderr, no output and no temporary file left.
count() { ls "$tmp" | grep -vc '^err$'; }
n_before=$(count)
fails() {
  local what=$1 out=$2
  shift 2
  if "$@" models/mnist_cnn.cnn --random-weights=1 --target=cuda -o "$out" 2> "$tmp/err"; then
    bad "$what: succeeded"
  elif ! grep -q '^cnnc: error: ' "$tmp/err"; then
    bad "$what: no error message"; cat "$tmp/err"
  fi
  [ -e "$out" ] && bad "$what: left $out"
  [ "$(count)" -eq "$n_before" ] || bad "$what: left files: $(ls "$tmp")"
}
fails "unwritable output" "$tmp/no/such/dir/m.so" "$cnnc"
touch "$tmp/plain"
n_before=$(count)
fails "output below a file" "$tmp/plain/m.so" "$cnnc"
fails "failing linker" "$tmp/x.so" env CC=false "$cnnc"
fails "no runtime" "$tmp/x.so" env CNNC_RUNTIME="$tmp/none.a" "$cnnc"

echo "CUDA model.so: $fail failures"
[ $fail -eq 0 ]
