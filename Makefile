# The top-level Makefile only drives CMake; the build is described in CMakeLists.txt.
BUILD      ?= build
JOBS       ?= $(shell nproc)
# tests wait on engines, sockets and timers more than on the CPU (a whole `make check` keeps
# the cores about half busy): two more than the cores
TEST_JOBS  ?= $(shell echo $$(( $$(nproc) + 2 )))
LISTEN     ?= 127.0.0.1:5000
ROOT       ?= ./data
CMAKE_ARGS ?=

.PHONY: all setup configure serve check test asan fuzz format format-check lint bench clean

all: configure
	cmake --build $(BUILD) -j $(JOBS)

# (a build directory that `make serve` configured without the tests gets them back)
configure:
	@if ! test -f $(BUILD)/CMakeCache.txt || grep -q '^BERTH_TESTS:BOOL=OFF' $(BUILD)/CMakeCache.txt; \
	then cmake -S . -B $(BUILD) -DBERTH_TESTS=ON $(CMAKE_ARGS); fi

setup:
	@sh scripts/setup.sh

# Only what serving needs: the build packages (no test tools) and the berth binary (no tests).
# `make serve LISTEN=0.0.0.0:5000 ROOT=/var/lib/berth` to choose where.
serve:
	@sh scripts/setup.sh --serve
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DBERTH_TESTS=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS) --target berth
	$(BUILD)/berth serve --listen $(LISTEN) --root $(ROOT)

# Everything CI runs: lint, the build, unit + integration tests, the fuzz replay,
# the sanitizer build of the unit and integration tests, and a fuzz smoke run.
check:
	@sh scripts/setup.sh --check
	sh scripts/lint.sh
	$(MAKE) all
	cd $(BUILD) && ctest --output-on-failure -j $(TEST_JOBS)
	$(MAKE) asan
	$(MAKE) fuzz

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan:
	@test -f build-asan/CMakeCache.txt || CC=clang cmake -S . -B build-asan \
	    -DCMAKE_BUILD_TYPE=Debug -DBERTH_SANITIZE=address,undefined
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    ctest --output-on-failure -j $(TEST_JOBS) -L 'unit|integration|replay' -LE engines

fuzz:
	@test -f build-fuzz/CMakeCache.txt || CC=clang cmake -S . -B build-fuzz \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTH_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS)
	cd build-fuzz && ctest --output-on-failure -j $(JOBS) -L fuzz

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

bench: all
	sh scripts/setup.sh --bench
	bash bench/overload.sh
	bash bench/copy_bench.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz
