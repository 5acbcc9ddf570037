# MLX Manager - build, run and test.
#
#   make run      install what is missing, build, start nginx + daemon, print URL
#   make check    every test: the normal build, then the sanitizer build
#   make test     the test suite once (SANITIZE=address,undefined for sanitizers)
#   make stop     stop what `make run` started
#   make fuzz     build the libFuzzer targets (clang); make fuzz-smoke runs each briefly
#   make bench    benchmark programs that print numbers
#   make bench-reference  llama.cpp (built here from the source node-llama-cpp
#                    carries) and our engine on the same shapes, side by side
#   make cert     a self-signed certificate for `make run TLS=1` (RUN_DIR/tls)
#   make fuzz-long   every fuzz target for FUZZ_SECONDS (600) each, FUZZ_JOBS (3) at
#                    a time, corpus kept in build-fuzz/corpus
#   make load-test   LOAD_CLIENTS (200) streaming clients for LOAD_SECONDS (300)
#   make fault-test  kills, corrupt and vanished models, disconnects, disk full
#   make tsan        the multi-threaded test programs under ThreadSanitizer (build-tsan)
#
# Variables: PORT (8080), HOST (127.0.0.1), RUN_DIR (run), SANITIZE, MLXM_SHARED,
#            TLS (1 = HTTPS + HTTP/2; TLS_CERT, TLS_KEY, TLS_HSTS), CERT_NAMES.

CC       ?= cc
SANITIZE ?=
PORT     ?= 8080
HOST     ?= 127.0.0.1
RUN_DIR  ?= run
TLS      ?= 0
MLXM_SHARED ?= $(abspath ../shared)
export MLXM_SHARED

ifeq ($(SANITIZE),)
BUILD    ?= build
OPT      ?= -O2
else
BUILD    ?= build-sanitize
OPT      ?= -O1 -fno-omit-frame-pointer
SAN_FLAGS = -fsanitize=$(SANITIZE) -fno-sanitize-recover=undefined
endif

WARN     = -Wall -Wextra -Wshadow -Wvla -Werror
CFLAGS  += -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) $(SAN_FLAGS) -pthread \
           -I. -Iengine -Ifcgi -I/usr/include/cjson -MMD -MP
LDFLAGS += $(SAN_FLAGS) -pthread
LDLIBS   = -lfcgi -lcjson -lsqlite3 -lyaml -lpcre2-8 -lutf8proc -lcurl -lcrypto -lm

ENGINE_SRC = $(sort $(wildcard engine/*.c engine/models/*.c))
FCGI_SRC   = $(sort $(filter-out fcgi/main.c,$(wildcard fcgi/*.c)))
TEST_SRC   = $(sort $(wildcard tests/test_*.c))
FUZZ_SRC   = $(sort $(wildcard tests/fuzz/fuzz_*.c))
BENCH_SRC  = $(sort $(wildcard tests/bench/bench_*.c))

ENGINE_OBJ = $(ENGINE_SRC:%.c=$(BUILD)/obj/%.o)
FCGI_OBJ   = $(FCGI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN   = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN  = $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all setup run stop test check fuzz fuzz-smoke fuzz-long load-test fault-test bench \
        bench-reference \
        format format-check clean cert tsan
.DEFAULT_GOAL := all
.SECONDARY:

all: $(BUILD)/mlx-manager $(TEST_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libengine.a: $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libdaemon.a: $(FCGI_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/mlx-manager: $(BUILD)/obj/fcgi/main.o $(BUILD)/libdaemon.a $(BUILD)/libengine.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(BUILD)/libdaemon.a $(BUILD)/libengine.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(BUILD)/libdaemon.a $(BUILD)/libengine.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

setup:
	@tools/setup.sh

run: setup all
	@BUILD=$(BUILD) PORT=$(PORT) HOST=$(HOST) RUN_DIR=$(RUN_DIR) TLS=$(TLS) tools/run.sh

cert:
	@tools/cert.sh $(RUN_DIR)/tls $(CERT_NAMES)

stop:
	@RUN_DIR=$(RUN_DIR) tools/stop.sh

test: setup all
	@BUILD=$(BUILD) tests/run.sh

check: setup
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SANITIZE=address,undefined all
	@tests/check.sh

# --- fuzzing (clang + libFuzzer) ------------------------------------------
# The engine and daemon are compiled once with coverage instrumentation
# (fuzzer-no-link) into one archive; each target links against it.
FUZZ_BUILD = build-fuzz
FUZZ_COMMON = -std=c11 -D_GNU_SOURCE -g -O1 -I. -Iengine -Ifcgi -I/usr/include/cjson -pthread
FUZZ_CFLAGS = $(FUZZ_COMMON) -fsanitize=fuzzer,address,undefined
FUZZ_LIB_CFLAGS = $(FUZZ_COMMON) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_OBJ = $(ENGINE_SRC:%.c=$(FUZZ_BUILD)/obj/%.o) $(FCGI_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_LIB_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/libfuzzdeps.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_BUILD)/libfuzzdeps.a
	clang $(FUZZ_CFLAGS) $< $(FUZZ_BUILD)/libfuzzdeps.a $(LDLIBS) -o $@

fuzz: $(FUZZ_BIN)

fuzz-smoke: fuzz
	@tests/fuzz/smoke.sh $(FUZZ_BUILD) $${FUZZ_SECONDS:-20}

# Long runs, outside `make check` (each takes minutes to hours).
# FUZZ_JOBS targets run at once (default 3: nine targets in three rounds).
FUZZ_JOBS ?= 3
fuzz-long: fuzz
	@FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/long.sh $(FUZZ_BUILD) $${FUZZ_SECONDS:-600}

# --- ThreadSanitizer -------------------------------------------------------
# The test programs that run threads (scheduler thread, compute pool, pool
# loader, concurrent tokenizer/template/metrics users), built with
# -fsanitize=thread into build-tsan, then the daemon itself under a short
# streaming load (TSAN_LOAD_SECONDS, 60; 0 skips it); outside `make check`
# (about 10 minutes on a busy 2-core machine).
TSAN_BUILD = build-tsan
TSAN_TESTS = test_scheduler test_pool test_engine test_engine_embed test_prefix_cache \
             test_kernels_simd test_kernels test_chat_template test_tokenizer test_metrics
tsan:
	@mkdir -p $(TSAN_BUILD) && echo '*' >$(TSAN_BUILD)/.gitignore
	@$(MAKE) --no-print-directory SANITIZE=thread BUILD=$(TSAN_BUILD) \
	    $(TSAN_BUILD)/mlx-manager $(TSAN_TESTS:%=$(TSAN_BUILD)/tests/%)
	@tests/tsan.sh $(TSAN_BUILD) $(TSAN_TESTS)

load-test: setup $(BUILD)/mlx-manager
	@BUILD=$(BUILD) node tests/load/load_test.mjs

fault-test: setup $(BUILD)/mlx-manager
	@BUILD=$(BUILD) node tests/fault/fault_test.mjs

bench: $(BUILD)/mlx-manager $(BENCH_BIN)
	@BUILD=$(BUILD) tests/bench/run.sh

# REFERENCE_ARGS: e.g. --quick, or --shapes llama-110m --types q4_0
bench-reference: $(BUILD)/mlx-manager $(BUILD)/bench/bench_models $(BUILD)/bench/reference/gguf_random
	@tools/setup.sh --reference
	@BUILD=$(BUILD) node tests/bench/reference/bench_reference.mjs $(REFERENCE_ARGS)

format:
	clang-format -i $(ENGINE_SRC) $(wildcard engine/*.h engine/models/*.h) fcgi/*.c fcgi/*.h tests/*.c tests/*.h

format-check:
	@clang-format --dry-run --Werror $(ENGINE_SRC) $(wildcard engine/*.h) fcgi/*.c fcgi/*.h tests/*.c tests/*.h

clean:
	rm -rf build build-sanitize build-fuzz build-tsan

-include $(shell find $(BUILD)/obj $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
