# lmsbridge — the two README commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo demo-mixed test test-real-clock test-shifted-clock lint format bench image clean plugin php-lint

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lmsbridge needs Python 3.11 or newer (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

demo-mixed: $(STAMP)
	$(BIN)/python examples/mixed_demo.py

# The browser tests drive Debian's Chromium through Playwright (no browser download).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# $(call apt-install,PACKAGE,WHO needs it): Debian's PACKAGE for the file the target names.
define apt-install
	@command -v apt-get >/dev/null || { echo "$(2) at $@"; exit 1; }
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1)
endef

$(CHROMIUM):
	$(call apt-install,chromium,the browser tests need Chromium)

# The suite runs twice: at the machine's real time, and with the machine's clock moved far
# from the tests' pinned time (tests/clock_shift.py), so anything that reads the real clock
# instead of bridge.clock fails at once, not only at some hours of some days.
SHIFTED_TIME := 2031-02-14 23:30:00

# The shifted pass preloads libfaketime built from the source the libfaketime wheel ships, with
# only the clock functions faked. The wheel's own build also wraps pthread_cond_timedwait, which
# calls getenv() on every call, and Python waits for its GIL there: any setenv() in the test
# process (monkeypatch.setenv) could then free the environment under a waiting thread, a
# segmentation fault in about one shifted run in five.
FAKETIME_SOURCE = $(shell $(BIN)/python -c 'from importlib.resources import files; print(files("libfaketime") / "vendor" / "libfaketime" / "src")')
FAKETIME_LIBRARY := $(VENV)/faketime/libfaketime.so.1

$(FAKETIME_LIBRARY): $(STAMP)
	@command -v $(CC) >/dev/null || { echo "the shifted-clock pass builds libfaketime and needs a C compiler ($(CC))"; exit 1; }
	@mkdir -p $(@D)
	$(CC) -std=gnu99 -O2 -fPIC -shared -DPREFIX='"/usr"' -DLIBDIRNAME='"/lib/faketime"' \
		-Wl,-soname,libfaketime.so.1 -Wl,--version-script=$(FAKETIME_SOURCE)/libfaketime.map \
		-o $@ $(FAKETIME_SOURCE)/libfaketime.c -lpthread -ldl -lm -lrt

# The companion Moodle plugin is checked with Debian's php-cli (`php -l` on every PHP file).
PHP := /usr/bin/php

$(PHP):
	$(call apt-install,php-cli,the plugin checks need php-cli)

php-lint: $(PHP)
	@find moodle -name '*.php' -print0 | xargs -0 -n1 $(PHP) -l >/dev/null && echo "php -l: every plugin file parses"

# The plugins as Moodle's plugin installer takes them: a ZIP holding the folder `lmsbridge/`.
BUILD ?= build

plugin:
	@rm -rf $(BUILD)/plugin && mkdir -p $(BUILD)/plugin/local $(BUILD)/plugin/block
	cp -R moodle/local_lmsbridge $(BUILD)/plugin/local/lmsbridge
	cp -R moodle/block_lmsbridge $(BUILD)/plugin/block/lmsbridge
	cd $(BUILD)/plugin/local && rm -f ../../local_lmsbridge.zip && $(PYTHON) -m zipfile -c ../../local_lmsbridge.zip lmsbridge
	cd $(BUILD)/plugin/block && rm -f ../../block_lmsbridge.zip && $(PYTHON) -m zipfile -c ../../block_lmsbridge.zip lmsbridge
	@rm -rf $(BUILD)/plugin
	@echo "$(BUILD)/local_lmsbridge.zip (install as local/lmsbridge), $(BUILD)/block_lmsbridge.zip (blocks/lmsbridge)"

# The two passes run side by side (each pytest session has its own scratch PostgreSQL database
# and temporary directories); each one's output is printed whole when it ends.
test: $(STAMP) $(CHROMIUM) php-lint
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-real-clock test-shifted-clock

test-real-clock: $(STAMP)
	$(BIN)/python -m pytest

test-shifted-clock: $(STAMP) $(FAKETIME_LIBRARY)
	LMSBRIDGE_FAKETIME_LIBRARY=$(FAKETIME_LIBRARY) $(BIN)/python -m tests.clock_shift "$(SHIFTED_TIME)" -q -p no:cacheprovider --ignore=tests/browser

lint: $(STAMP)
	$(BIN)/ruff check bridge connectors tests bench examples
	$(BIN)/ruff format --check bridge connectors tests bench examples
	$(BIN)/mypy bridge connectors

format: $(STAMP)
	$(BIN)/ruff check --fix bridge connectors tests bench examples
	$(BIN)/ruff format bridge connectors tests bench examples

bench: $(STAMP)
	$(BIN)/python -m bench

# The service image from deploy/docker/Dockerfile, tagged as deploy/kubernetes and deploy/compose.yaml
# name it (the version is pyproject.toml's). Pushing it is yours: docker push $(IMAGE).
# `make -n image` prints the command without running it.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_NAME ?= ghcr.io/lmsbridge/lmsbridge
IMAGE ?= $(IMAGE_NAME):$(VERSION)
DOCKER ?= docker

image:
	$(DOCKER) build --file deploy/docker/Dockerfile --tag $(IMAGE) --label org.opencontainers.image.version=$(VERSION) .

clean:
	rm -rf $(VENV) demo-run build *.egg-info
