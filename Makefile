# The gate mesh. `make` builds, `make test` installs what is missing and runs
# every test (normal build, then ASan+UBSan), `make run` starts a demo gate,
# `make bench` prints the performance figures, `make fuzz` runs the fuzzers.

B ?= build
CC ?= cc
OPT ?= -O2
SAN ?=
PKGS := libuv libh2o msgpack libsodium jansson libqrencode libpng zbar libcurl openssl
CFLAGS_PKG := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS_PKG := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lraft -llmdb -lpthread -lm
CFLAGS := -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
          -g $(OPT) -I. $(CFLAGS_PKG) $(SAN)
LDFLAGS := $(SAN)

LIB_SRC := $(wildcard lib/*.c)
LEDGER_SRC := $(wildcard ledger/*.c)
METHODS_SRC := $(wildcard methods/*.c)
RAFT_SRC := $(wildcard raft/*.c)
GOSSIP_SRC := $(wildcard gossip/*.c)
NODE_SRC := $(filter-out node/main.c node/gatectl.c node/nfc_tool.c,$(wildcard node/*.c))
CORE_SRC := $(LIB_SRC) $(LEDGER_SRC) $(METHODS_SRC) $(RAFT_SRC) $(GOSSIP_SRC)
CORE_OBJ := $(CORE_SRC:%.c=$(B)/%.o)
NODE_OBJ := $(NODE_SRC:%.c=$(B)/%.o)
SIM_SRC := $(filter-out sim/gatesim.c,$(wildcard sim/*.c))
SIM_OBJ := $(SIM_SRC:%.c=$(B)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: all deps test test-unit test-integration test-sim test-partition test-san run bench fuzz clean
TOOL_BIN := $(B)/tests/tools/sealed
all: $(B)/gated $(B)/gatectl $(B)/gatesim $(UNIT_BIN) $(TOOL_BIN)

deps:
	@bash scripts/deps.sh

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/libgmcore.a: $(CORE_OBJ)
	ar rcs $@ $^

$(B)/libgmnode.a: $(NODE_OBJ)
	ar rcs $@ $^

$(B)/gated: $(B)/node/main.o $(B)/libgmnode.a $(B)/libgmcore.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_PKG)

# Only the operators' tool talks to NFC readers.
$(B)/gatectl: $(B)/node/gatectl.o $(B)/node/nfc_tool.o $(B)/libgmnode.a $(B)/libgmcore.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_PKG) $(shell pkg-config --libs libnfc 2>/dev/null)

# The simulator allocates and frees tens of millions of small messages and
# log entries: jemalloc does that with less CPU than glibc's heap (make bench
# shows it). A sanitizer build keeps the sanitizer's allocator.
SIM_MALLOC := $(if $(SAN),,-ljemalloc)
$(B)/gatesim: $(B)/sim/gatesim.o $(SIM_OBJ) $(B)/libgmcore.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_PKG) $(SIM_MALLOC)

$(B)/tests/%: tests/unit/%.c $(B)/libgmnode.a $(B)/libgmcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS_PKG) -lcriterion

$(B)/libgmsim.a: $(SIM_OBJ)
	ar rcs $@ $^

# The simulator's parts are tested on their own too.
$(B)/tests/test_simio: tests/unit/test_simio.c $(B)/libgmsim.a $(B)/libgmcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS_PKG) -lcriterion

# Helpers the integration tests run.
$(B)/tests/tools/%: tests/tools/%.c $(B)/libgmcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS_PKG)

BENCH_BIN := $(B)/bench/bench_core $(B)/bench/bench_bio $(B)/bench/hello $(B)/bench/mkcreds
$(B)/bench/%: bench/%.c $(B)/libgmnode.a $(B)/libgmcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS_PKG)

test-unit: all
	@bash tests/run_unit.sh $(B)

test-integration: all
	@bash tests/integration/run.sh $(B)

test-sim: all
	@bash tests/sim/run.sh $(B)

# Five gates in network namespaces (root only; skipped otherwise).
test-partition: all
	@bash tests/partition/test_netns.sh $(B)

# Everything twice: the optimised build, then ASan+UBSan (abort on any report).
test: deps
	@mkdir -p build && : > build/test-counts
	@$(MAKE) --no-print-directory test-unit test-integration test-sim test-partition
	@SIM_SEEDS=4 $(MAKE) --no-print-directory B=build/san OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  test-unit test-integration test-sim test-partition
	@GM_RECORD_COUNTS=1 FUZZ_SECONDS=5 bash tests/fuzz/run.sh
	@bash tests/summary.sh

run: deps all
	@bash scripts/run.sh $(B)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@bash bench/run.sh $(B)

fuzz: deps
	@bash tests/fuzz/run.sh

clean:
	rm -rf build

-include $(shell find $(B) -name '*.d' 2>/dev/null)
