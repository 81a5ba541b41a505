# codekeep: `make test` runs every gate CI runs; `make bench` the benchmarks; `make demo` the tour.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

export CARGO_TARGET_DIR ?= $(CURDIR)/target
export VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
CBINDGEN_VERSION := 0.29.4
CBINDGEN := $(HOME)/.cargo/bin/cbindgen
STATICLIB := $(CARGO_TARGET_DIR)/debug/libcodekeep.a
CFLAGS := -Wall -Wextra -Werror -std=c11 -g -Iinclude
LDLIBS := -lpthread -ldl -lm
# ring computes AES-GCM in assembly whose output memcheck cannot track as initialised, so
# uninitialised-value checks report its ciphertexts falsely; leaks and invalid accesses are checked.
VALGRIND := valgrind --suppressions=ffi/tests/c/valgrind.supp --undef-value-errors=no --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
FEATURES := crypto audit git webhooks server postgres s3

.PHONY: test demo bench tools venv lint rust-test features header header-check c-test staticlib python-build python-test bench-build clean

# The benches are type-checked by clippy (--all-targets); building them in release is left to
# `make bench`, which saves CI a second full build of every dependency (time and disk).
test: tools lint features header-check rust-test c-test python-test
	@echo "make test: every gate passed"

tools: venv
	@if ! "$(CBINDGEN)" --version 2>/dev/null | grep -q "$(CBINDGEN_VERSION)"; then \
	  cargo install --locked --force cbindgen@$(CBINDGEN_VERSION); fi
	@command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
	@command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
	@# The git tests drive the real ssh client and make keys and certificates.
	@command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || { apt-get update -qq && apt-get install -y -qq openssh-client; }
	@command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql; }

venv: $(VENV)/.ready
$(VENV)/.ready: python/requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r python/requirements-dev.txt
	touch $@

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
	RUSTDOCFLAGS=-Dwarnings cargo doc -p codekeep --no-deps --all-features --locked

# Each feature alone, and none: it must build without warnings (dead code in a reduced build
# is gated, not left to warn).
features:
	for f in "" $(FEATURES); do \
	  out=$$(cargo check -q -p codekeep --no-default-features $${f:+--features $$f} --locked 2>&1) || { echo "$$out"; exit 1; }; \
	  if [ -n "$$out" ]; then echo "$$out"; echo "warnings with features '$$f'"; exit 1; fi; \
	done

rust-test:
	scripts/with-services.sh cargo test --workspace --all-features --locked
	cargo run -q -p codekeep-examples --example iam --locked >/dev/null
	cargo run -q -p codekeep-examples --example git --locked -- $(CARGO_TARGET_DIR)/git-demo >/dev/null
	cargo run -q -p codekeep-examples --example events --locked -- $(CARGO_TARGET_DIR)/events-demo >/dev/null

header:
	"$(CBINDGEN)" --config ffi/cbindgen.toml --crate codekeep-ffi --output include/codekeep.h ffi

header-check: header
	git diff --exit-code include/ || { echo "include/codekeep.h is out of date: run make header and commit it"; exit 1; }

staticlib:
	cargo build -p codekeep-ffi --locked

c-test: staticlib
	mkdir -p build
	cc $(CFLAGS) ffi/tests/c/test_ffi.c $(STATICLIB) $(LDLIBS) -o build/test_ffi
	cc $(CFLAGS) examples/c/quickstart.c $(STATICLIB) $(LDLIBS) -o build/quickstart_c
	cc $(CFLAGS) examples/c/iam.c $(STATICLIB) $(LDLIBS) -o build/iam_c
	cc $(CFLAGS) examples/c/git_story.c $(STATICLIB) $(LDLIBS) -o build/git_story_c
	cc $(CFLAGS) examples/c/events.c $(STATICLIB) $(LDLIBS) -o build/events_c
	c++ -Wall -Wextra -Werror -x c++ -fsyntax-only -Iinclude - <<< '#include "codekeep.h"'
	rm -rf build/c-provider-keep && ./build/test_ffi
	rm -rf build/c-quickstart && ./build/quickstart_c build/c-quickstart
	rm -rf build/c-provider-keep && $(VALGRIND) ./build/test_ffi
	rm -rf build/c-quickstart && $(VALGRIND) ./build/quickstart_c build/c-quickstart >/dev/null
	./build/iam_c
	$(VALGRIND) ./build/iam_c >/dev/null
	./build/git_story_c build/c-git-story
	$(VALGRIND) ./build/git_story_c build/c-git-story >/dev/null
	./build/events_c build/c-events
	$(VALGRIND) ./build/events_c build/c-events >/dev/null
	@# Only codekeep_* may be exported from the shared library.
	@nm -D --defined-only $(CARGO_TARGET_DIR)/debug/libcodekeep.so | awk '$$2 ~ /^[TDBR]$$/ {print $$3}' > build/exported.txt
	@test -s build/exported.txt
	@! grep -v '^codekeep_' build/exported.txt || { echo "symbols without the codekeep_ prefix are exported"; exit 1; }

python-build: venv
	cd python && VIRTUAL_ENV=$(VENV) PATH=$(VENV)/bin:$$PATH $(VENV)/bin/maturin develop -q --locked

python-test: python-build staticlib
	$(PY) -m pytest -q python/tests examples/python
	scripts/readme-snippets.sh $(STATICLIB) $(PY) $(VALGRIND)

bench-build:
	cargo bench -p codekeep-bench --no-run --locked

bench: python-build
	scripts/with-services.sh cargo bench -p codekeep-bench --locked -- --quiet
	$(PY) benches/aws_encryption_sdk_peer.py
	@echo "== summary =="; cat $(CARGO_TARGET_DIR)/codekeep-bench-summary.txt

demo:
	cargo run -q -p codekeep-examples --example quickstart --locked -- ./codekeep-data
	@echo
	cargo run -q -p codekeep-examples --example git --locked -- ./codekeep-data/git-demo
	@echo
	cargo run -q -p codekeep-examples --example events --locked -- ./codekeep-data/events-demo

clean:
	rm -rf build codekeep-data
