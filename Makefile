# Apiary — top-level entry points. `make demo` and `make test` work on a fresh
# Debian bookworm machine as root: they install what they need first.
BUILD_DIR  ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
CTEST_ARGS ?=

.PHONY: all deps configure build test test-fast demo bench format clean install

all: build

deps:
	@bash scripts/install-deps.sh

# Re-running cmake on a configured tree is cheap and repairs a failed configure.
configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Every test through ctest; non-zero exit on any failure.
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 600 $(CTEST_ARGS)

# Skip the tests labelled slow (for a quick local loop).
test-fast: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -LE slow $(CTEST_ARGS)

# Builds only the `apiary` binary (not the tests), then runs the demo.
demo: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target apiary
	@bash scripts/demo.sh $(BUILD_DIR)

bench: build
	@bash scripts/bench.sh $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp' '*.cu' '*.cuh')

install: build
	cmake --install $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
