# ngx_wsgi: one entry point to build, run and test.
#   make run    build nginx + the module, serve nginx-conf/example.conf on 127.0.0.1:8080
#   make test   cargo test + the Test::Nginx suite under t/, against the test
#               build (scripts/build test), and t/001 against the release build
#   make test-eagain  the streaming, framing, slow-client, thread-mode and
#               upload files with every socket write of nginx cut short (t/lib/eagain.c)
#   make deb    libnginx-mod-http-wsgi_*.deb for Debian 12's own nginx, in
#               target/debian/ (scripts/deb)
#   make test-distro  installs Debian's nginx and that package, runs the suite
#               against them and checks Debian's own nginx.conf serving an app
#               (scripts/test-distro; as root)
#   make test-memcheck  t/001 and t/006 with nginx under valgrind memcheck
#               (scripts/memcheck; MEMCHECK=long: 17 files, inline and threads)
#   make fuzz   each cargo-fuzz target (fuzz/) for 5 minutes; make fuzz-smoke:
#               20 s each, as CI runs them (scripts/fuzz; nightly Rust)
#   make soak   a million mixed requests on 2 workers, 2 x 10,000 clients
#               leaving mid-stream, then reloads under load: every response,
#               the workers' RSS, descriptors and Python objects checked
#               (bench/soak.py)
#   make bench  ngx_wsgi side by side with uWSGI, gunicorn, granian, bjoern: small
#               responses, streams, uploads, a 100 MiB file, a Flask app (bench/)
#               and ASGI (asgi_pass beside granian, uvicorn, hypercorn: hello,
#               a stream, WebSocket echo)
# Both install what is missing on Debian 12 first (scripts/install-deps).

PREFIX := $(CURDIR)/target/nginx
# The test build: test hooks, nginx --with-debug (scripts/build says more).
TEST_PREFIX := $(CURDIR)/target/nginx-test
# rustup's cargo, when the shell has not put it on PATH.
export PATH := $(PATH):$(HOME)/.cargo/bin
export PYO3_PYTHON ?= /usr/bin/python3.11
export TEST_NGINX_BINARY := $(TEST_PREFIX)/sbin/nginx
export TEST_NGINX_LOAD_MODULES := $(TEST_PREFIX)/modules/ngx_http_wsgi_module.so
export TEST_NGINX_APPS := $(CURDIR)/t/apps
export TEST_NGINX_CERTS := $(CURDIR)/t/certs
export TEST_NGINX_EXAMPLES := $(CURDIR)/nginx-conf
export TEST_NGINX_VENV := $(CURDIR)/target/venv

.PHONY: all build build-test run test unit prove prove-release eagain test-eagain prove-eagain deps test-deps venv bench clean deb test-distro fuzz fuzz-smoke test-memcheck soak

all: build

deps:
	scripts/install-deps build

test-deps:
	scripts/install-deps test

build: deps
	scripts/build

build-test: deps
	scripts/build test

run: build
	$(PREFIX)/sbin/nginx -p $(PREFIX) -c $(CURDIR)/nginx-conf/example.conf -g 'daemon off;'

test: test-deps build build-test venv eagain
	$(MAKE) --no-print-directory unit prove prove-release prove-eagain

# The example apps' virtualenv (Flask, Django), used by the suite.
venv:
	scripts/make-venv target/venv

unit:
	scripts/build unit

prove:
	prove -r t/

# The release build loads and serves (the suite ran against the test build).
prove-release:
	TEST_NGINX_BINARY=$(PREFIX)/sbin/nginx \
	TEST_NGINX_LOAD_MODULES=$(PREFIX)/modules/ngx_http_wsgi_module.so \
	prove t/001-basics.t

# The Debian package, built against Debian's nginx-dev sources.
deb:
	scripts/deb

test-distro: deb
	scripts/test-distro

test-memcheck: test-deps build-test venv
	scripts/memcheck $(MEMCHECK)

fuzz: deps
	scripts/fuzz 300

fuzz-smoke: deps
	scripts/fuzz 20

# EAGAIN mode: preloaded into nginx, t/lib/eagain.c answers every write to a
# TCP socket with EAGAIN until nginx polled it writable, then lets a few
# bytes through. It needs nginx's poll event method.
EAGAIN_LIB := $(CURDIR)/target/eagain/libeagain.so
EAGAIN_TESTS := t/006-framing.t t/011-streaming.t t/012-slow-clients.t t/013-threads.t \
	t/026-asgi-http.t t/027-asgi-events.t t/029-asgi-websocket.t t/030-asgi-uploads.t \
	t/017-bodies.t t/018-uploads.t \
	t/threads/006-framing.t t/threads/011-streaming.t t/threads/012-slow-clients.t

eagain: $(EAGAIN_LIB)

$(EAGAIN_LIB): t/lib/eagain.c
	mkdir -p $(dir $@)
	cc -shared -fPIC -O2 -Wall -Wextra -o $@ $< -ldl

test-eagain: test-deps build-test venv eagain
	$(MAKE) --no-print-directory prove-eagain

prove-eagain:
	TEST_NGINX_LD_PRELOAD=$(EAGAIN_LIB) TEST_NGINX_EVENT_TYPE=poll prove $(EAGAIN_TESTS)

# BENCH_ARGS="--quick" for a short run; see bench/run.py --help.
bench: build deb
	scripts/install-deps bench
	scripts/debian-install target/debian/libnginx-mod-http-wsgi_*.deb
	scripts/make-venv target/bench-venv bench/requirements.txt
	/usr/bin/python3.11 bench/run.py $(BENCH_ARGS)
	/usr/bin/python3.11 bench/streaming.py
	/usr/bin/python3.11 bench/threads.py
	/usr/bin/python3.11 bench/uploads.py
	/usr/bin/python3.11 bench/files.py
	/usr/bin/python3.11 bench/framework.py
	/usr/bin/python3.11 bench/asgi.py

# The soak: 1,000,000 mixed requests, storms of aborting clients, reloads
# under load (bench/soak.py; SOAK_ARGS="--requests 100000" for a short one).
soak: build
	/usr/bin/python3.11 bench/soak.py $(SOAK_ARGS)

clean:
	cargo clean
	rm -rf t/servroot*
