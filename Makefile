# infer - build, test, sanitize, fuzz, install.
#
#   make            libinfer.a and the infer CLI, in build/
#   make test       build and run the Criterion suite
#   make asan       everything with ASan+UBSan in build-asan/, suite run under it
#   make tsan       the threaded tests under ThreadSanitizer, in build-tsan/
#   make fuzz       libFuzzer targets (clang) in build-fuzz/, with seed corpora
#   make install PREFIX=/usr/local  (libinfer.a, headers, infer, infer.pc)
#   make clean

CC      ?= cc
PREFIX  ?= /usr/local
WERROR  ?= -Werror
OPT     ?= -O2
# -ffp-contract=off: a*b+c stays two roundings, as the reference kernels
# and llama.cpp's numerics have it. GCC in ISO C mode does so already;
# clang (make fuzz, CC=clang) would fuse such scalar steps where FMA exists.
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -g $(OPT) -ffp-contract=off -Wall -Wextra $(WERROR) -Wshadow \
              -Wno-unused-parameter -Iinclude -Isrc -Ikernels -MMD -MP
LDLIBS_BASE = -lpcre2-8 -lopenblas -lm -lpthread

# Debian packages each kind of build needs (tools/deps.sh installs or asks).
DEPS_BUILD = gcc make pkg-config libpcre2-dev libopenblas-dev
DEPS_TEST  = libcriterion-dev
DEPS_FUZZ  = clang libclang-rt-14-dev
# Vulkan backend: the loader and glslc to build it; lavapipe (Mesa's CPU
# Vulkan device) and the validation layer to test it on any machine.
DEPS_BUILD += libvulkan-dev glslc
DEPS_TEST  += mesa-vulkan-drivers vulkan-validationlayers
LDLIBS_BASE += -lvulkan

LIB_SRC  = $(filter-out src/main.c src/cli_%.c,$(wildcard src/*.c)) $(wildcard kernels/ref/*.c) kernels/dispatch.c

# SIMD kernels for the target architecture, each file with its own ISA flags
# (the dispatch table picks the level at run time).
HOST_TRIPLE := $(shell $(CC) -dumpmachine 2>/dev/null)
ifneq (,$(findstring x86_64,$(HOST_TRIPLE)))
LIB_SRC += $(wildcard kernels/x86/*.c)
endif
ifneq (,$(findstring aarch64,$(HOST_TRIPLE)))
LIB_SRC += $(wildcard kernels/arm/*.c)
endif
ISA_AVX2   = -mavx2 -mfma -mf16c
ISA_AVXVNNI = $(ISA_AVX2) -mavxvnni
ISA_AVX512 = $(ISA_AVX2) -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512dq
ISA_NEON   = -march=armv8.2-a+dotprod
CLI_SRC  = src/main.c $(wildcard src/cli_*.c)
TEST_SRC = $(wildcard tests/*.c)
# Programs in tools/: tools/infer_NAME.c becomes $(B)/infer-NAME, linked with libinfer.a
# (infer-quantize, infer-synth) and the objects named below for it (quantize_rules.o).
TOOL_SRC = $(wildcard tools/infer_*.c)
TOOL_BIN = $(patsubst tools/infer_%.c,$(B)/infer-%,$(TOOL_SRC))

B ?= build
LIB_OBJ  = $(LIB_SRC:%.c=$(B)/obj/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(B)/obj/%.o)
TEST_OBJ = $(TEST_SRC:%.c=$(B)/obj/%.o)
LIB_OBJ += $(B)/obj/gen/vk_spirv.o

CFLAGS  = $(CFLAGS_BASE) $(EXTRA_CFLAGS) $(ISA_FLAGS) $(KERNEL_FLAGS)
LDFLAGS += $(EXTRA_LDFLAGS)
LDLIBS  = $(LDLIBS_BASE)

# Tests find ../shared (models, references) through this; they skip with a
# message when it is absent.
export INFER_SHARED ?= $(abspath ../shared)

.PHONY: all test asan tsan fuzz install clean deps deps-test deps-fuzz run check FORCE

all: $(B)/libinfer.a $(B)/infer $(TOOL_BIN) $(B)/infer-bench

$(B)/.deps-build: tools/deps.sh
	@mkdir -p $(B) && ./tools/deps.sh $(DEPS_BUILD) && touch $@
$(B)/.deps-test: tools/deps.sh
	@mkdir -p $(B) && ./tools/deps.sh $(DEPS_TEST) && touch $@

$(B)/obj/%.o: %.c | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/obj/kernels/x86/avx2%.o: ISA_FLAGS = $(ISA_AVX2)
$(B)/obj/kernels/x86/avxvnni%.o: ISA_FLAGS = $(ISA_AVXVNNI)
$(B)/obj/kernels/x86/avx512%.o: ISA_FLAGS = $(ISA_AVX512)
$(B)/obj/kernels/arm/%.o: ISA_FLAGS = $(ISA_NEON)
# Extra flags for the SIMD kernels alone (make fuzz sets them).
$(B)/obj/kernels/x86/%.o: KERNEL_FLAGS = $(KERNEL_SAN)

# Compute shaders: shaders/*.comp -> SPIR-V (glslc, build time only) ->
# C arrays (tools/spv2c) in $(B)/gen/vk_spirv.c. One matmul and get_rows
# per weight type (-DWTYPE_x); _nosg variants reduce through shared memory
# for devices without subgroup arithmetic.
VK_TYPES   = f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k
VK_SHADERS = $(foreach t,$(VK_TYPES),matmul_$(t) matmul_$(t)_nosg get_rows_$(t)) quantize_act \
             rms_norm rms_norm_nosg rope kv_store attention attention_nosg elementwise kv_move
VK_SPV     = $(VK_SHADERS:%=$(B)/spv/%.spv)
VK_GLSL    = $(wildcard shaders/*.glsl)
GLSLC     ?= glslc
GLSLC_FLAGS = --target-env=vulkan1.1 -O -Werror

$(B)/spv/matmul_%_nosg.spv: shaders/matmul.comp $(VK_GLSL) | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(GLSLC) $(GLSLC_FLAGS) -DWTYPE_$* -DNO_SUBGROUP $< -o $@
$(B)/spv/matmul_%.spv: shaders/matmul.comp $(VK_GLSL) | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(GLSLC) $(GLSLC_FLAGS) -DWTYPE_$* $< -o $@
$(B)/spv/get_rows_%.spv: shaders/get_rows.comp $(VK_GLSL) | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(GLSLC) $(GLSLC_FLAGS) -DWTYPE_$* $< -o $@
$(B)/spv/%_nosg.spv: shaders/%.comp $(VK_GLSL) | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(GLSLC) $(GLSLC_FLAGS) -DNO_SUBGROUP $< -o $@
$(B)/spv/%.spv: shaders/%.comp $(VK_GLSL) | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(GLSLC) $(GLSLC_FLAGS) $< -o $@
$(B)/spv2c: tools/spv2c.c | $(B)/.deps-build
	$(CC) -std=c11 -O2 -Wall -Wextra $(WERROR) -o $@ $<
$(B)/gen/vk_spirv.c: $(VK_SPV) $(B)/spv2c
	@mkdir -p $(dir $@)
	$(B)/spv2c $@ $(foreach s,$(VK_SHADERS),$(s)=$(B)/spv/$(s).spv)
$(B)/obj/gen/vk_spirv.o: $(B)/gen/vk_spirv.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libinfer.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/infer: $(CLI_OBJ) $(B)/libinfer.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(B)/libinfer.a $(LDLIBS)

$(B)/infer-%: $(B)/obj/tools/infer_%.o $(B)/libinfer.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(B)/libinfer.a $(LDLIBS)
$(B)/infer-quantize: $(B)/obj/tools/quantize_rules.o $(B)/obj/tools/quantize_meta.o $(B)/obj/tools/imatrix.o
# Kept: reached only through the pattern rule above, make would count them
# intermediate, delete them after the first build and compile them again.
.SECONDARY: $(TOOL_SRC:%.c=$(B)/obj/%.o)

# The tests link the importance-matrix reader of infer-quantize (its
# allocation-failure tests call it directly).
TEST_TOOL_OBJ = $(B)/obj/tools/imatrix.o
$(B)/test_infer: $(TEST_OBJ) $(TEST_TOOL_OBJ) $(B)/libinfer.a | $(B)/.deps-test
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(TEST_OBJ) $(TEST_TOOL_OBJ) $(B)/libinfer.a -lcriterion $(LDLIBS)

$(B)/obj/tests/%.o: tests/%.c | $(B)/.deps-test $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The test suite. TEST_ARGS goes to Criterion (e.g. --filter 'gguf_hostile/*').
test: all $(B)/test_infer
	@if grep -n '\.timeout' tests/*.c | grep -v 'TEST_TIMEOUT'; then \
	    echo "tests: a .timeout other than TEST_TIMEOUT (tests/testutil.h says why)" >&2; exit 1; fi
	INFER_BIN=$(abspath $(B)/infer) $(B)/test_infer --jobs 2 $(TEST_ARGS)

# Sanitizers: same tree, built into build-asan/, whole suite run under it.
ASAN_FLAGS = -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
asan:
	$(MAKE) B=build-asan OPT="$(ASAN_FLAGS)" EXTRA_LDFLAGS="-fsanitize=address,undefined" test \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1

# ThreadSanitizer over the threaded scenarios (shared models, EBUSY,
# release under a live context, concurrent tokenization). A plain program:
# Criterion's process arena cannot start under TSan.
TSAN_FLAGS = -O1 -fsanitize=thread -fno-omit-frame-pointer
tsan:
	$(MAKE) B=build-tsan OPT="$(TSAN_FLAGS)" EXTRA_LDFLAGS="-fsanitize=thread" build-tsan/libinfer.a
	$(CC) $(CFLAGS_BASE) $(TSAN_FLAGS) -o build-tsan/test_threads tests/tsan/test_threads.c \
	    build-tsan/libinfer.a -fsanitize=thread $(LDLIBS)
	TSAN_OPTIONS=halt_on_error=1:exitcode=66 build-tsan/test_threads

# libFuzzer targets with clang: every fuzz/fuzz_NAME.c becomes
# build-fuzz/fuzz_NAME, its corpus build-fuzz/corpus/NAME. tools/fuzz-seeds.sh
# seeds build-fuzz/corpus/gguf with files made by build-fuzz/make-seeds (the
# project's own writer) and the headers of the models in ../shared. Run with
#   build-fuzz/fuzz_gguf -max_total_time=60 build-fuzz/corpus/gguf
# The library is built without -Werror here: clang may warn where gcc does not.
# The x86 SIMD kernels are built without clang's signed-integer-overflow and
# pointer-overflow checks: over their fully unrolled multi-stream bodies those
# take clang minutes per file (avx2_gemv_p.c: 7.5 min against 14 s). make asan
# (gcc, every check) runs every kernel at every level the machine has.
FUZZ_TARGETS = $(patsubst fuzz/%.c,build-fuzz/%,$(wildcard fuzz/fuzz_*.c))
FUZZ_CORPORA = $(patsubst build-fuzz/fuzz_%,build-fuzz/corpus/%,$(FUZZ_TARGETS))
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -ffp-contract=off -Iinclude -Isrc -Ikernels \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
fuzz: | build-fuzz/.deps-fuzz
	$(MAKE) B=build-fuzz CC=clang WERROR= \
	    OPT="-O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
	    KERNEL_SAN="-fno-sanitize=signed-integer-overflow,pointer-overflow" build-fuzz/libinfer.a
	$(MAKE) fuzz-targets
	mkdir -p $(FUZZ_CORPORA)
	MAKE_SEEDS=build-fuzz/make-seeds ./tools/fuzz-seeds.sh build-fuzz/corpus "$(INFER_SHARED)"

fuzz-targets: $(FUZZ_TARGETS) build-fuzz/make-seeds
build-fuzz/.deps-fuzz: tools/deps.sh
	@mkdir -p build-fuzz && ./tools/deps.sh $(DEPS_FUZZ) && touch $@
build-fuzz/fuzz_%: fuzz/fuzz_%.c build-fuzz/libinfer.a
	clang $(FUZZ_CFLAGS) -o $@ $< build-fuzz/libinfer.a $(LDLIBS_BASE)
# infer-quantize's importance-matrix reader lives in tools/, beside its program.
build-fuzz/fuzz_imatrix: fuzz/fuzz_imatrix.c tools/imatrix.c tools/imatrix.h build-fuzz/libinfer.a
	clang $(FUZZ_CFLAGS) -Itools -o $@ fuzz/fuzz_imatrix.c tools/imatrix.c build-fuzz/libinfer.a $(LDLIBS_BASE)
build-fuzz/make-seeds: fuzz/seeds.c build-fuzz/libinfer.a
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc -Ikernels \
	    -fsanitize=fuzzer-no-link,address,undefined -o $@ $< build-fuzz/libinfer.a $(LDLIBS_BASE)

# Kernel micro-benchmark (GFLOP/s and GB/s per weight type and ISA level).
$(B)/bench-kernels: $(B)/obj/bench/bench_kernels.o $(B)/obj/bench/bench_kernels_main.o $(B)/libinfer.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(B)/obj/bench/bench_kernels.o $(B)/obj/bench/bench_kernels_main.o \
	    $(B)/libinfer.a $(LDLIBS)

# infer-bench: llama-bench-compatible model benchmarks; --kernels runs the
# kernel micro-benchmark. The build line names the git revision.
# The stamp file changes only when the revision does, so a new commit
# rebuilds bench_report.o (the flag alone would not).
INFER_GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
$(B)/obj/bench/bench_report.o: EXTRA_CFLAGS += -DINFER_GIT_REV='"$(INFER_GIT_REV)"'
$(B)/obj/bench/bench_report.o: $(B)/git-rev.stamp
$(B)/git-rev.stamp: FORCE
	@mkdir -p $(B) && { echo '$(INFER_GIT_REV)' | cmp -s - $@ || echo '$(INFER_GIT_REV)' > $@; }
FORCE:
BENCH_OBJ = $(addprefix $(B)/obj/bench/,infer_bench.o bench_report.o bench_kernels.o bench_probe.o)
$(B)/infer-bench: $(BENCH_OBJ) $(B)/libinfer.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(BENCH_OBJ) $(B)/libinfer.a $(LDLIBS)

run: all
	$(B)/infer $(INFER_SHARED)/models/stories260K.gguf -p "Once upon a time" -n 128 --temp 0

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(B)/libinfer.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/infer.h include/infer_gguf.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(B)/infer $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(shell sed -n 's/.*INFER_VERSION_STRING "\(.*\)"/\1/p' include/infer.h)|' \
	    -e 's|@LIBS@|$(LDLIBS)|' infer.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/infer.pc

clean:
	rm -rf build build-asan build-fuzz

# NEON kernels (kernels/arm) against the reference, cross-compiled for
# aarch64 into build-neon/ and run under qemu-aarch64; no Criterion needed.
# As in an aarch64 build of the library, only kernels/arm is built for
# dotprod; the rest for plain ARMv8-A, so the second run, on a CPU without
# dotprod (qemu's Cortex-A53), checks that the reference is chosen and runs.
NEON_CC   = aarch64-linux-gnu-gcc
DEPS_NEON = gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
NEON_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O2 -ffp-contract=off -Wall -Wextra $(WERROR) -Wshadow -Wno-unused-parameter \
              -Iinclude -Isrc -Ikernels
NEON_OBJ  = $(patsubst %.c,build-neon/obj/%.o,tests/neon/test_kernels_neon.c $(wildcard kernels/ref/*.c) \
              $(wildcard kernels/arm/*.c) kernels/dispatch.c src/types.c src/util.c)
NEON_HDR  = $(wildcard include/*.h src/util.h kernels/*.h kernels/ref/*.h kernels/arm/*.h)

.PHONY: test-neon
test-neon: build-neon/test_kernels_neon
	qemu-aarch64 build-neon/test_kernels_neon
	qemu-aarch64 -cpu cortex-a53 build-neon/test_kernels_neon --no-dotprod

build-neon/.deps-neon: tools/deps.sh
	@mkdir -p build-neon && ./tools/deps.sh $(DEPS_NEON) && touch $@
build-neon/obj/kernels/arm/%.o: kernels/arm/%.c $(NEON_HDR) | build-neon/.deps-neon
	@mkdir -p $(dir $@)
	$(NEON_CC) $(NEON_CFLAGS) $(ISA_NEON) -c -o $@ $<
build-neon/obj/%.o: %.c $(NEON_HDR) | build-neon/.deps-neon
	@mkdir -p $(dir $@)
	$(NEON_CC) $(NEON_CFLAGS) -march=armv8-a -c -o $@ $<
build-neon/test_kernels_neon: $(NEON_OBJ)
	$(NEON_CC) -static -o $@ $^ -lm -lpthread

-include $(shell find $(B) -name '*.d' 2>/dev/null)
