# csmil — the two commands are `make demo` and `make test`; see README.md.

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
DATADIR     ?= $(PREFIX)/share
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR  ?= /etc
DESTDIR     ?=
SWIFT       ?= swift

.PHONY: all setup build release test demo install uninstall format lint clean

all: build

## Install the Debian packages the build needs (idempotent, quiet when all is there).
setup:
	@scripts/setup

## Debug build.
build: setup
	$(SWIFT) build

## Optimised build: .build/release/csmil.
release: setup
	$(SWIFT) build -c release

## Build and run the whole test suite (warnings are errors in every csmil target).
test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test

## Build in release mode and run the demo (scripts/demo).
demo: release
	@scripts/demo .build/release/csmil

## Install the binary, the systemd unit, the service user, the default config and the model folder.
install: release
	install -D -m 0755 .build/release/csmil $(DESTDIR)$(BINDIR)/csmil
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DATADIR)/csmil/models
	sed 's|/usr/local/bin/csmil|$(BINDIR)/csmil|' systemd/csmil.service > $(DESTDIR)$(UNITDIR)/csmil.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/csmil.service
	install -m 0644 systemd/csmil.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/csmil.conf
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/csmil
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/csmil/csmil.toml ]; then \
		echo "kept the existing $(DESTDIR)$(SYSCONFDIR)/csmil/csmil.toml (new default: etc/csmil.toml)"; \
	else \
		sed 's|/usr/share/csmil/|$(DATADIR)/csmil/|' etc/csmil.toml > $(DESTDIR)$(SYSCONFDIR)/csmil/csmil.toml; \
		chmod 0640 $(DESTDIR)$(SYSCONFDIR)/csmil/csmil.toml; \
	fi
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null && [ -d /run/systemd/system ]; then \
		systemd-sysusers $(SYSUSERSDIR)/csmil.conf && systemctl daemon-reload; \
		echo "installed; next: csmil doctor --config $(SYSCONFDIR)/csmil/csmil.toml, then systemctl enable --now csmil"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/csmil $(DESTDIR)$(UNITDIR)/csmil.service $(DESTDIR)$(SYSUSERSDIR)/csmil.conf
	@echo "kept $(SYSCONFDIR)/csmil, /var/lib/csmil and $(DATADIR)/csmil (configuration, results, models)"

## Format the sources with the checked-in .swift-format.
format:
	$(SWIFT) format --in-place --recursive Package.swift Sources Tests

lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests

clean:
	rm -rf .build
