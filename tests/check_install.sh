#!/usr/bin/env bash
# `cmake --install` into a temporary prefix, moved elsewhere afterwards (every installed path
# must be relative), then used from outside the source tree as a user would: the installed
# cnnc compiles the MNIST network with the runtime it was installed with (and fails without
# it, rather than reach for the build tree's); examples/digits.c and a program of the loader
# (cnnc/loader.h) are built with `pkg-config --cflags --libs cnnc` and with a CMake project's
# find_package(cnnc), and run; the man pages render without warnings and name every option.
#     check_install.sh CMAKE BUILD_DIR
set -u
cmake=$1 build=$2
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

failed() {
  echo "FAIL: $*"
  fail=1
}

# Installed into stage, used from prefix.
if ! "$cmake" --install "$build" --prefix "$tmp/stage" > "$tmp/install.log" 2>&1; then
  cat "$tmp/install.log"
  echo "FAIL: cmake --install"
  exit 1
fi
mv "$tmp/stage" "$tmp/prefix"
prefix=$tmp/prefix
for f in bin/cnnc bin/cnnrun bin/cnntrain lib/cnnc/libcnnc_rt.a include/cnnc/model.h \
         include/cnnc/abi.h include/cnnc/loader.h share/man/man1/cnnc.1 share/man/man1/cnnrun.1 \
         share/man/man1/cnntrain.1 share/doc/cnnc/language.md; do
  [ -f "$prefix/$f" ] || failed "$f was not installed"
done
pc=$(find "$prefix" -name cnnc.pc)
config=$(find "$prefix" -name cnncConfig.cmake)
[ -n "$pc" ] || failed "no cnnc.pc installed"
[ -n "$config" ] || failed "no cnncConfig.cmake installed"
[ -f "${config%/*}/cnncConfigVersion.cmake" ] || failed "no cnncConfigVersion.cmake installed"
[ $fail -eq 0 ] || exit 1
export PKG_CONFIG_PATH=${pc%/*}
if ! command -v pkg-config > /dev/null; then
  echo "FAIL: no pkg-config (scripts/install-deps.sh test installs pkgconf)"
  exit 1
fi

# A sanitizer build's runtime is instrumented: so must be what loads its model.so.
cflags="-O1"
if ldd "$prefix/bin/cnnc" 2>/dev/null | grep -q -E 'lib(asan|ubsan)'; then
  cflags="$cflags -fsanitize=address,undefined"
fi

work=$tmp/work
mkdir -p "$work"
cp -r "$src/models/mnist_cnn.cnn" "$src/models/mnist_cnn.safetensors" "$src/models/digits" \
   "$src/examples/digits.c" "$work/"
cd "$work" || exit 1
cnnc=$prefix/bin/cnnc
want=$(sed -n 's/^accuracy //p' digits/expected.txt)

# The runtime is the installed one, found from cnnc's own directory: without it, an error.
unset CNNC_RUNTIME
mv "$prefix/lib/cnnc/libcnnc_rt.a" "$tmp/rt.a"
if "$cnnc" mnist_cnn.cnn --weights=mnist_cnn.safetensors -o none.so 2> err.txt ||
   ! grep -q "runtime library not found" err.txt; then
  cat err.txt
  failed "the installed cnnc built a model.so without its installed runtime"
fi
mv "$tmp/rt.a" "$prefix/lib/cnnc/libcnnc_rt.a"
if ! "$cnnc" mnist_cnn.cnn --weights=mnist_cnn.safetensors -o mnist.so; then
  failed "the installed cnnc could not compile models/mnist_cnn.cnn"
  exit 1
fi
[ "$(pkg-config --modversion cnnc)" = "$("$cnnc" --version | cut -d' ' -f2)" ] ||
  failed "pkg-config --modversion cnnc is not cnnc --version's"
[ "$(pkg-config --variable=cnnc cnnc)" -ef "$cnnc" ] ||
  failed "pkg-config --variable=cnnc cnnc is not the installed cnnc"

# A user's program of cnnc/loader.h, strict ISO C with POSIX.
cat > app.c <<'APP'
/* Opens MODEL.so with cnnc/loader.h and runs it once on zeros. */
#include <stdio.h>
#include <stdlib.h>

#include <cnnc/loader.h>

int main(int argc, char **argv)
{
    ModelApi api;
    char err[512];
    if (argc != 2) return fputs("usage: app MODEL.so\n", stderr), 2;
    if (!model_api_open(&api, argv[1], err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    cnn_options opt;
    api.options_init(&opt);
    opt.num_threads = 1;
    cnn_model *m;
    cnn_status s = api.create(&opt, &m);
    if (s != CNN_OK) return fprintf(stderr, "create: %s\n", api.status_string(s)), 1;
    cnn_tensor_info in, out;
    if (api.input_info(m, 0, &in) != CNN_OK || api.output_info(m, 0, &out) != CNN_OK) return 1;
    cnn_tensor x = {calloc(1, in.size), in.size}, y = {calloc(1, out.size), out.size};
    s = api.run(m, &x, 1, &y, 1);
    printf("%d input, %d output: %s [%lld, %lld] -> %s [%lld, %lld]: %s\n", api.num_inputs(m),
           api.num_outputs(m), in.name, (long long)in.dims[0], (long long)in.dims[1], out.name,
           (long long)out.dims[0], (long long)out.dims[1], api.status_string(s));
    free(x.data);
    free(y.data);
    api.destroy(m);
    dlclose(api.lib);
    return s != CNN_OK;
}
APP

# digits prints "MODEL.so: N/360 correct"; app its model's shapes and the run's status.
check_runs() { # HOW DIGITS APP MODEL.so
  if ! "$2" digits "$4" > "$1.digits.out" 2>&1 ||
     ! grep -q "^$4: $want correct" "$1.digits.out"; then
    cat "$1.digits.out"
    failed "digits.c built with $1 did not classify $want correctly"
  fi
  if ! "$3" "$4" > "$1.app.out" 2>&1 || ! grep -q -- "-> .*\[1, 10\]: success$" "$1.app.out"; then
    cat "$1.app.out"
    failed "the loader's program built with $1 did not run the model"
  fi
}

# pkg-config.
read -r -a pc_flags <<< "$(pkg-config --cflags --libs cnnc)"
if cc $cflags digits.c "${pc_flags[@]}" -lm -o digits_pc &&
   cc $cflags -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -pedantic -Werror app.c \
      "${pc_flags[@]}" -o app_pc; then
  check_runs pkg-config ./digits_pc ./app_pc "$work/mnist.so"
else
  failed "cc ... \$(pkg-config --cflags --libs cnnc) did not build"
fi

# CMake: find_package(cnnc), the target cnnc::cnnc, and CNNC_EXECUTABLE compiling the model.
mkdir cmake_app
cp digits.c app.c cmake_app/
cat > cmake_app/CMakeLists.txt <<'APP'
cmake_minimum_required(VERSION 3.20)
project(cnnc_app C)
find_package(cnnc 0.1 REQUIRED)
message(STATUS "cnnc_DIR: ${cnnc_DIR}")
add_executable(digits digits.c)
target_link_libraries(digits PRIVATE cnnc::cnnc m)
add_executable(app app.c)
set_target_properties(app PROPERTIES C_STANDARD 11 C_EXTENSIONS OFF)
target_compile_definitions(app PRIVATE _POSIX_C_SOURCE=200809L)
target_link_libraries(app PRIVATE cnnc::cnnc)
add_custom_command(OUTPUT mnist.so
                   COMMAND ${CNNC_EXECUTABLE} ${MODEL_DIR}/mnist_cnn.cnn
                           --weights=${MODEL_DIR}/mnist_cnn.safetensors -o mnist.so
                   DEPENDS ${MODEL_DIR}/mnist_cnn.cnn VERBATIM)
add_custom_target(model ALL DEPENDS mnist.so)
APP
if "$cmake" -S cmake_app -B cmake_app/build -DCMAKE_PREFIX_PATH="$prefix" \
     -DMODEL_DIR="$work" -DCMAKE_C_FLAGS="$cflags" > cmake.log 2>&1 &&
   "$cmake" --build cmake_app/build >> cmake.log 2>&1; then
  grep -q "cnnc_DIR: ${config%/*}$" cmake.log || failed "find_package(cnnc) found another cnnc"
  check_runs CMake cmake_app/build/digits cmake_app/build/app "$work/cmake_app/build/mnist.so"
else
  cat cmake.log
  failed "the CMake project of find_package(cnnc) did not build"
fi

# The man pages: rendered (man, else groff, else mandoc) with no warning, every option of
# --help among their tags.
render() {
  if command -v man > /dev/null; then MANWIDTH=100 man --warnings -l "$1"
  elif command -v groff > /dev/null; then groff -man -ww -Tutf8 -P-cbou "$1"
  elif command -v mandoc > /dev/null; then mandoc -W warning "$1"
  else grep -q '^\.TH ' "$1" && cat "$1"
  fi
}
for prog in cnnc cnnrun cnntrain; do
  page=$prefix/share/man/man1/$prog.1
  if ! render "$page" > "$prog.man" 2> "$prog.warnings" || [ -s "$prog.warnings" ]; then
    cat "$prog.warnings"
    failed "$prog.1 did not render cleanly"
    continue
  fi
  for section in NAME SYNOPSIS DESCRIPTION OPTIONS "SEE ALSO"; do
    grep -q "^$section" "$prog.man" || failed "$prog.1 has no $section section"
  done
  for opt in $("$prefix/bin/$prog" --help | sed -n 's/^  \(-[^ ,=|]*\).*/\1/p'); do
    grep -q -e "^ *$opt\b" "$prog.man" || failed "$prog.1 does not list $opt"
  done
done

[ $fail -eq 0 ] || exit 1
echo "PASS: installed (bin, lib/cnnc, include/cnnc, pkg-config, CMake package, man pages);" \
     "digits.c classified $want through pkg-config and find_package(cnnc)"
