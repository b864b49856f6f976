# tern: `make run` serves the example site; `make test` is everything CI checks.
CARGO ?= cargo
PORT ?= 8080
FUZZ_SECONDS ?= 60

.PHONY: run build release test check fmt clippy unit bench bench-micro bench-load fuzz soak clean

run: release
	./target/release/tern --listen 127.0.0.1:$(PORT) --access-log - examples/site

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# Everything CI checks.
test: fmt clippy unit

check: test

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets

# Benchmarks (not part of `make test`): criterion micro-benchmarks, then the load comparison
# with nginx, lighttpd and h2o (benches/load.sh; BENCH_SECONDS, BENCH_ROUNDS, BENCH_ONLY).
bench: bench-micro bench-load

bench-micro:
	$(CARGO) bench --bench http

bench-load:
	CARGO="$(CARGO)" bash benches/load.sh

clean:
	$(CARGO) clean
