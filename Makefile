# distkit developer commands. `make demo` and `make test` are all a fresh
# machine with Rust needs; both install redis-server first when it is missing.

CARGO      ?= cargo
REDIS_PORT ?= 16379
CLUSTER_PORTS ?= 17000 17001 17002
RUN_DIR    := $(CURDIR)/target/redis
DEMO_URL   := redis://127.0.0.1:$(REDIS_PORT)/
CRATES     := distkit-core distkit-counter distkit-icounter distkit-lock distkit-ratelimit distkit

.PHONY: setup demo test lint fmt-check clippy unit-tests doc check-crates package-check \
        bench redis-up redis-down cluster-up cluster-down soak

## setup: install redis-server and redis-cli when missing
setup:
	@if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then \
		echo "redis: $$(redis-server --version | cut -d' ' -f1-3)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server redis-tools; \
	elif command -v brew >/dev/null 2>&1; then \
		brew install redis; \
	else \
		echo "redis-server not found: install Redis 7 (https://redis.io/docs/latest/operate/oss_and_stack/install/) and retry"; \
		exit 1; \
	fi

## demo: start a Redis on $(REDIS_PORT) if needed and run the tour of every primitive
demo: setup redis-up
	REDIS_URL=$(DEMO_URL) $(CARGO) run -q -p distkit --example tour --features full

## test: formatting, lints, every test (unit, integration, cluster, doctests), docs
test: setup fmt-check clippy unit-tests doc check-crates package-check
	@echo "make test: all checks passed"

lint: fmt-check clippy

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

unit-tests:
	$(CARGO) test --workspace --all-features

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --all-features

## check-crates: each crate builds on its own, and the facade with no and all features
check-crates:
	@for crate in $(CRATES); do \
		echo "build $$crate alone"; $(CARGO) build -q -p $$crate || exit 1; \
	done
	$(CARGO) build -q -p distkit --no-default-features
	$(CARGO) build -q -p distkit --features full

## package-check: every published crate packages the Lua scripts it embeds
package-check:
	@for crate in $(CRATES); do \
		list=$$($(CARGO) package -q -p $$crate --list --allow-dirty 2>/dev/null) || { echo "cargo package --list failed for $$crate"; exit 1; }; \
		for script in $$(grep -ho 'include_str!("\.\./scripts/[^"]*")' -r crates/$$crate/src 2>/dev/null | sed 's/include_str!("\.\.\///; s/")//'); do \
			echo "$$list" | grep -qx "$$script" || { echo "$$crate does not package $$script"; exit 1; }; \
		done; \
	done; echo "package-check: scripts are packaged"

## bench: criterion benchmarks against a throwaway Redis (or REDIS_URL)
bench: setup
	$(CARGO) bench -p distkit-benches

## soak: fault rounds for SOAK_SECONDS (default 600)
soak: setup
	SOAK_SECONDS=$${SOAK_SECONDS:-600} $(CARGO) test -p distkit-tests --release --test soak -- --nocapture

## redis-up / redis-down: a Redis on $(REDIS_PORT) (Docker Compose if an engine answers)
redis-up:
	@if redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1; then \
		echo "redis already answers on $(REDIS_PORT)"; \
	elif docker info >/dev/null 2>&1; then \
		docker compose up -d redis; \
	else \
		mkdir -p $(RUN_DIR) && redis-server --port $(REDIS_PORT) --bind 127.0.0.1 --daemonize yes \
			--dir $(RUN_DIR) --save "" --appendonly no \
			--pidfile $(RUN_DIR)/redis-$(REDIS_PORT).pid --logfile $(RUN_DIR)/redis-$(REDIS_PORT).log; \
		for i in $$(seq 1 50); do redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.1; done; \
		echo "redis-server running on $(REDIS_PORT)"; \
	fi

redis-down:
	@if docker info >/dev/null 2>&1; then docker compose down -v; fi
	@redis-cli -p $(REDIS_PORT) shutdown nosave >/dev/null 2>&1 || true
	@rm -f $(RUN_DIR)/redis-$(REDIS_PORT).pid

## cluster-up / cluster-down: a 3-master cluster on $(CLUSTER_PORTS)
cluster-up:
	@if docker info >/dev/null 2>&1; then \
		docker compose --profile cluster up -d; \
	else \
		for port in $(CLUSTER_PORTS); do \
			mkdir -p $(RUN_DIR)/cluster-$$port && redis-server --port $$port --bind 127.0.0.1 --daemonize yes \
				--dir $(RUN_DIR)/cluster-$$port --save "" --appendonly no --cluster-enabled yes \
				--cluster-config-file nodes.conf --logfile redis.log; \
		done; \
		sleep 1; \
		redis-cli --cluster create $(foreach p,$(CLUSTER_PORTS),127.0.0.1:$(p)) --cluster-replicas 0 --cluster-yes; \
	fi

cluster-down:
	@if docker info >/dev/null 2>&1; then docker compose --profile cluster down -v; fi
	@for port in $(CLUSTER_PORTS); do redis-cli -p $$port shutdown nosave >/dev/null 2>&1 || true; \
		rm -rf $(RUN_DIR)/cluster-$$port; done
