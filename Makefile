# orcd: one Makefile for the binary, the tests, the fuzzers and the benchmarks.
#
#   make              build build/orcd (with the CUDA backend whenever nvcc is present)
#   make run          set up everything (packages, models) and start orcd serve on the default model
#   make test         set up everything and run the C unit tests, then the Python tests
#   make test SAN=1   the same, built with AddressSanitizer + UBSan (into build/san, CPU backend only)
#   make fuzz         build the libFuzzer targets and run each for FUZZ_TIME seconds
#   make bench        benchmarks: quant kernels (GB/s) and orcd bench on the default model (tok/s)
#   make deps         install missing Debian packages and Python test tools
#   make model        fetch, reassemble and verify the default models into models/
#   make format       clang-format every C/CUDA source

CC      ?= cc
PYTHON  ?= python3
SAN     ?= 0
NVCC    ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA    ?= $(if $(NVCC),1,0)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCHS ?= 80 90
FUZZ_TIME ?= 60

ifeq ($(SAN),1)
  BUILD    ?= build/san
  CUDA     := 0
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  OPT      := -O1 -g
else
  BUILD    ?= build
  SANFLAGS :=
  OPT      := -O2 -g
endif

SRC     := $(sort $(filter-out src/main.c,$(shell find src -name '*.c')))

# The HTTP server (src/server/) needs libmicrohttpd and jansson (tools/deps.sh installs them). Where they
# are missing (the GPU machine has no apt), orcd is built without it and `orcd serve` says so.
ifeq ($(origin SERVER),undefined)
  SERVER := $(shell pkg-config --exists libmicrohttpd jansson 2>/dev/null && echo 1 || echo 0)
endif
ifeq ($(SERVER),1)
  SERVER_CFLAGS := -DORCD_SERVER $(shell pkg-config --cflags libmicrohttpd jansson)
  SERVER_LIBS   := $(shell pkg-config --libs libmicrohttpd jansson)
else
  SRC := $(filter-out src/server/%,$(SRC))
endif

CFLAGS  := -std=c11 $(OPT) -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -MMD -MP $(SANFLAGS) $(SERVER_CFLAGS)
LDFLAGS := $(SANFLAGS)
LDLIBS  := $(SERVER_LIBS) -lm -lpthread

CU_SRC  := $(sort $(shell find src -name '*.cu'))
TEST_SRC := $(wildcard tests/unit/*.c)

ifeq ($(CUDA),1)
  CFLAGS   += -DORCD_CUDA -I$(CUDA_HOME)/include -DORCD_CUDA_LIB_DIR='"$(CUDA_HOME)/lib64"'
  NVFLAGS  := -O2 -std=c++17 -MMD -MP -Xcompiler -Wall,-Wextra,-Werror $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a))
  CU_OBJ   := $(CU_SRC:%.cu=$(BUILD)/%.o)
  ifeq ($(TIMELINE),1) # a developer's build: each decode kernel's time inside the graph (src/backend/cuda/timeline.cuh)
    CFLAGS  += -DORCD_TIMELINE
    NVFLAGS += -DORCD_TIMELINE
  endif
  LDLIBS   += -L$(CUDA_HOME)/lib64 -lcudart_static -lrt -ldl -lstdc++
else
  CU_OBJ   :=
endif

OBJ      := $(SRC:%.c=$(BUILD)/%.o) $(CU_OBJ)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

DEFAULT_MODEL := models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf

.PHONY: all run test unit pytest fuzz bench deps model format clean gpu-test

all: $(BUILD)/orcd

$(BUILD)/orcd: $(BUILD)/src/main.o $(OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit_tests: $(TEST_OBJ) $(OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) -c -o $@ $<

-include $(OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/src/main.d

# The files that test ORCD_SERVER are rebuilt when the libraries appear or go (a stamp per setting).
$(BUILD)/src/cli/serve.o $(BUILD)/tests/unit/test_server.o: $(BUILD)/server-$(SERVER).stamp
$(BUILD)/server-$(SERVER).stamp:
	@mkdir -p $(@D) && rm -f $(BUILD)/server-*.stamp && touch $@

# ---- set-up: every step is idempotent and quick when already done ----

deps:
	@tools/deps.sh

model: deps
	@$(PYTHON) tools/fetch_models.py models

# ---- running ----

run: deps model all
	$(BUILD)/orcd serve -m $(DEFAULT_MODEL)

# ---- tests ----

$(BUILD)/gguf_corpus/manifest.tsv: tests/gguf/make_corpus.py
	$(PYTHON) tests/gguf/make_corpus.py $(BUILD)/gguf_corpus

$(BUILD)/quant_cases/quant_cases.gguf: tests/quant/make_quant_cases.py
	$(PYTHON) tests/quant/make_quant_cases.py $(BUILD)/quant_cases

TEST_ENV := ORCD_CORPUS=$(BUILD)/gguf_corpus ORCD_MODELS=models ORCD_SAN=$(SAN) \
	ORCD_QUANT_CASES=$(BUILD)/quant_cases/quant_cases.gguf

unit: $(BUILD)/unit_tests $(BUILD)/gguf_corpus/manifest.tsv $(BUILD)/quant_cases/quant_cases.gguf
	$(TEST_ENV) $(BUILD)/unit_tests

pytest: $(BUILD)/orcd $(BUILD)/gguf_corpus/manifest.tsv $(BUILD)/quant_cases/quant_cases.gguf
	$(TEST_ENV) ORCD_BIN=$(BUILD)/orcd $(PYTHON) -m pytest -q -rs tests/python

test: deps model
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory pytest

# ---- GPU tests (on a machine with a CUDA device; they report as skipped elsewhere) ----
# Kernel tests against the CPU ops (also under compute-sanitizer's memcheck when it is there), then the
# whole-model comparisons with the CPU backend (tests/python/test_cuda.py).

SANITIZER ?= $(shell command -v compute-sanitizer 2>/dev/null || { test -x $(CUDA_HOME)/bin/compute-sanitizer && echo $(CUDA_HOME)/bin/compute-sanitizer; })

gpu-test: $(BUILD)/orcd $(BUILD)/unit_tests
	$(MAKE) --no-print-directory TIMELINE=1 BUILD=$(BUILD)/timeline $(BUILD)/timeline/orcd
	$(BUILD)/unit_tests cuda
	$(if $(SANITIZER),$(SANITIZER) --tool memcheck --leak-check full --error-exitcode 1 $(BUILD)/unit_tests cuda)
	ORCD_BIN=$(BUILD)/orcd ORCD_TIMELINE_BIN=$(BUILD)/timeline/orcd ORCD_MODELS=models \
	  $(PYTHON) -m pytest -q -rs -s tests/python/test_cuda.py

# ---- benchmarks (programs that print figures; never assertions) ----

$(BUILD)/quant_dot: bench/quant_dot.c src/quant.c $(wildcard src/quant/*.c)
	$(CC) -std=c11 -O2 -o $@ $^ -lm -lpthread

bench: deps model all $(BUILD)/quant_dot
	$(BUILD)/quant_dot
	$(BUILD)/orcd bench -m $(DEFAULT_MODEL) -p 512 -n 128 -r 3
	$(BUILD)/orcd bench -m models/smollm2-135m-instruct-q4_1.gguf -p 512 -n 128 -r 3

# ---- fuzzing (clang's libFuzzer, with ASan + UBSan) ----

FUZZ_CFLAGS := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
ifneq ($(SERVER),1)
  FUZZ_TARGETS := $(filter-out build/fuzz/fuzz_request,$(FUZZ_TARGETS))
endif

# Each tests/fuzz/fuzz_NAME.c is one target, linked with every host C source but main.
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(SRC)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) $(SERVER_CFLAGS) -o $@ $^ $(SERVER_LIBS) -lm -lpthread

fuzz: deps $(FUZZ_TARGETS) $(BUILD)/gguf_corpus/manifest.tsv
	@for t in $(FUZZ_TARGETS); do \
	  name=$$(basename $$t); mkdir -p build/fuzz/corpus-$$name; \
	  echo "fuzzing $$name for $(FUZZ_TIME) s"; \
	  $$t -max_total_time=$(FUZZ_TIME) -max_len=65536 -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/ build/fuzz/corpus-$$name $(BUILD)/gguf_corpus \
	    $$(test -d tests/fuzz/seeds-$$name && echo tests/fuzz/seeds-$$name) \
	    || exit 1; \
	done

# ---- housekeeping ----

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')

clean:
	rm -rf build
