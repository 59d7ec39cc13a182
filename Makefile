# The two commands: `make demo` and `make test`. Both install what is missing first.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc)
PREFIX     ?= /usr/local
CMAKE_ARGS ?=
# CI builds treat warnings as errors.
WERROR     := $(if $(CI),-DCNNC_WERROR=ON,)
CNNC       := $(BUILD)/tools/cnnc
# The Python of the ONNX tests and python/tests: a virtual environment over Debian's Python,
# whose torch and torchvision it sees, with these exact packages from PyPI (torch 1.13 needs
# numpy 1.x).
VENV       ?= .venv
VENV_BASE  ?= /usr/bin/python3
VENV_PINS  := numpy<2 onnx==1.16.2 onnxruntime==1.19.2 protobuf==5.29.5 pytest==8.3.5
# The benchmark's peers (ONNX Runtime, OpenVINO), apart from the test venv, which CI makes:
# the tests need no OpenVINO.
BENCH_VENV ?= .venv-bench
BENCH_ARGS ?=

.PHONY: all build deps test-deps test-venv bench-deps bench demo train-demo install test \
        test-fast test-asan test-fuzz fuzz clean

all: build

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(WERROR) \
	  -DCNNC_ONNX_PYTHON=$(abspath $(VENV))/bin/python $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

demo: build
	@echo "== The MNIST network, every shape inferred (cnnc models/mnist_cnn.cnn --emit=ir)"
	@$(CNNC) models/mnist_cnn.cnn --emit=ir
	@echo
	@echo "== A mistake is located (cnnc tests/bad/mnist_pool_twice.cnn --emit=ir)"
	@! $(CNNC) tests/bad/mnist_pool_twice.cnn --emit=ir
	@echo
	@echo "== Compiled with its trained weights, for 1 image and for 360 at a time"
	@mkdir -p $(BUILD)/models
	$(CNNC) models/mnist_cnn.cnn --weights=models/mnist_cnn.safetensors -o $(BUILD)/models/mnist_cnn.so
	$(CNNC) models/mnist_cnn.cnn --weights=models/mnist_cnn.safetensors --batch=360 \
	  -o $(BUILD)/models/mnist_cnn_b360.so
	@echo
	@echo "== 360 held-out handwritten digits classified through the C API (examples/digits.c)"
	@$(BUILD)/examples/digits models/digits $(BUILD)/models/mnist_cnn.so \
	  $(BUILD)/models/mnist_cnn_b360.so
	@echo "PyTorch, when it trained the network (tools/train_mnist.py):" \
	  "$$(sed -n 's/^accuracy //p' models/digits/expected.txt) correct"

# The same network trained by cnnc itself with PyTorch's split and settings (cnnc --train,
# cnntrain), classifying the same held-out digits; then models/mlp.cnn (scripts/train_digits.sh).
train-demo: build
	@scripts/train_digits.sh $(CNNC) $(BUILD)/tools/cnntrain $(BUILD)/examples/digits \
	  $(BUILD)/train-demo

# cnnc, cnnrun, the runtime, the headers, cnnc.pc, the CMake package cnnc, the man pages and
# the docs under PREFIX (DESTDIR=DIR stages them under DIR).
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

test: test-deps test-fast test-asan test-fuzz

# (Re)made only when the pins change: $(VENV)/pins holds those it was made with. It comes
# before test-fast's build, whose configure adds the ONNX tests only if $(VENV) exists.
test-venv: test-deps
	@if [ "$$(cat $(VENV)/pins 2>/dev/null)" != '$(VENV_PINS)' ]; then \
	  echo "test-venv: $(VENV) with $(VENV_PINS)"; \
	  rm -rf $(VENV) && $(VENV_BASE) -m venv --system-site-packages $(VENV) && \
	  $(VENV)/bin/pip install --quiet --disable-pip-version-check \
	    $(foreach p,$(VENV_PINS),'$(p)') && \
	  echo '$(VENV_PINS)' > $(VENV)/pins; \
	fi

# (Re)made only when bench/requirements.txt changes: $(BENCH_VENV)/requirements.txt is the
# copy it was made with.
bench-deps: test-deps
	@if ! cmp -s bench/requirements.txt $(BENCH_VENV)/requirements.txt; then \
	  echo "bench-deps: $(BENCH_VENV) with bench/requirements.txt"; \
	  rm -rf $(BENCH_VENV) && $(VENV_BASE) -m venv --system-site-packages $(BENCH_VENV) && \
	  $(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check \
	    -r bench/requirements.txt && \
	  cp bench/requirements.txt $(BENCH_VENV)/requirements.txt; \
	fi

# Every zoo model against PyTorch, ONNX Runtime and OpenVINO into bench/RESULTS.md (about 40
# minutes on 2 cores; bench/run.py --help for filters, BENCH_ARGS passes them).
bench: bench-deps build
	@/usr/bin/python3 bench/run.py --build=$(BUILD) --peer-python=$(BENCH_VENV)/bin/python \
	  $(BENCH_ARGS)

test-fast: test-venv build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCNNC_SANITIZE=ON $(WERROR) $(CMAKE_ARGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j$(JOBS) -LE slow

# The fuzz harnesses (tests/fuzz): every corpus input replayed, then a short run each.
test-fuzz: test-deps
	@FUZZ_BUILD=$(FUZZ_BUILD) JOBS=$(JOBS) scripts/fuzz.sh --replay 15

# Fuzzing proper: FUZZ_SECONDS per harness, new finds under $(FUZZ_BUILD)/out.
fuzz: test-deps
	@FUZZ_BUILD=$(FUZZ_BUILD) JOBS=$(JOBS) scripts/fuzz.sh $(FUZZ_SECONDS) $(HARNESS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
