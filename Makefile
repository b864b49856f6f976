# tern: `make run` serves the example site; `make test` is everything CI checks.
CARGO ?= cargo
PORT ?= 8080
FUZZ_SECONDS ?= 60

.PHONY: run build release test deps check fmt clippy unit bench bench-micro bench-load bench-instr fuzz soak clean tls-scan

run: release
	./target/release/tern --listen 127.0.0.1:$(PORT) --access-log - examples/site

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# Everything CI checks. `deps` first installs the test clients and Chromium when missing
# (.ci/deps; TERN_SKIP_BROWSER=1 leaves out Chromium and its test).
test: deps
	$(MAKE) --no-print-directory fmt clippy unit

deps:
	bash .ci/deps

check: test

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets

# Benchmarks (not part of `make test`): criterion micro-benchmarks, then the load comparison
# with nginx, lighttpd and h2o (benches/load.sh; BENCH_SECONDS, BENCH_ROUNDS, BENCH_ONLY).
# sslscan against a TLS listener with a fresh certificate: protocols, ciphers, renegotiation.
tls-scan:
	cargo test --test tls sslscan -- --nocapture

bench: bench-micro bench-load

bench-micro:
	$(CARGO) bench --bench http

bench-load:
	CARGO="$(CARGO)" bash benches/load.sh

# User-space instructions per keep-alive request under callgrind (benches/callgrind.sh;
# CLIENT=wrk|ab, FLOOR=1 for the reference responder).
bench-instr:
	bash benches/callgrind.sh

# Fuzzing (cargo-fuzz on stable via RUSTC_BOOTSTRAP=1): every target for FUZZ_SECONDS,
# with debug assertions and overflow checks on. New inputs go to fuzz/work/ (not checked
# in); fuzz/corpus/ holds the seeds and regressions that `make test` replays.
FUZZ_TARGETS ?= head conn range path headers route tls auth cgi_head upstream

fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p work/$$t && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -a $$t work/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

# The long hostile-client run: mixed load for SOAK_SECONDS (default 300) while the server's
# RSS and descriptors are sampled; prints the samples.
soak:
	$(CARGO) test --release --test hostile -- --ignored --nocapture soak

clean:
	$(CARGO) clean
