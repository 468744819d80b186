# csmil — the two commands are `make demo` and `make test`; see README.md. `make deb` builds the Debian
# packages, `make test-system` installs them in a Debian 12 container booted with systemd-nspawn and tests them
# under its systemd.

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
DATADIR     ?= $(PREFIX)/share
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
MANDIR      ?= $(DATADIR)/man
SYSCONFDIR  ?= /etc
DESTDIR     ?=
SWIFT       ?= swift
VERSION     := $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null)

.PHONY: all setup build release test demo deb test-system install uninstall format lint clean

all: build

## Install the Debian packages the build needs (idempotent, quiet when all is there).
setup:
	@scripts/setup

## Debug build.
build: setup
	$(SWIFT) build

## Optimised build: .build/release/csmil, its man pages in .build/man, the demo model's backbones in models/demo.
release: setup
	$(SWIFT) build -c release
	$(SWIFT) build -c release --product generate-manual
	GENERATE_MANUAL=.build/release/generate-manual scripts/manpages .build/release/csmil $(VERSION) .build/man
	scripts/demo-backbones .build/release/csmil

## Build and run the whole test suite (warnings are errors in every csmil target).
test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test

## Build in release mode and run the demo (scripts/demo).
demo: release
	@scripts/demo .build/release/csmil

## The Debian packages, in dist/: csmil (Swift runtime linked in) and csmil-demo-model (see debian/rules).
deb:
	@scripts/setup deb
	mkdir -p dist
	dpkg-buildpackage -b -us -uc --buildinfo-option=-udist --changes-option=-udist \
		--buildinfo-file=dist/csmil_$(VERSION)_amd64.buildinfo --changes-file=dist/csmil_$(VERSION)_amd64.changes
	@ls -l dist/csmil_$(VERSION)_amd64.deb dist/csmil-demo-model_$(VERSION)_all.deb

## Installs the .debs in a Debian 12 container booted with systemd-nspawn and tests csmil under its systemd
## (scripts/test-system; root only; the container's root file system is cached in /var/cache/csmil-test-system).
test-system: deb
	@scripts/setup system-test
	scripts/test-system dist/csmil_$(VERSION)_amd64.deb dist/csmil-demo-model_$(VERSION)_all.deb

## Installs what `make release` built (run that first, as yourself): the binary, the unit, the service user and
## folders, the man pages, the default config and the demo model. Runs no build and no apt.
install:
	@for f in .build/release/csmil .build/man/csmil.1 .build/man/csmil.toml.5 models/demo/backbone_5x.safetensors; do \
		[ -e "$$f" ] || { echo "make install: $$f is missing; run make release first (as yourself, not root)" >&2; exit 1; }; \
	done
	install -D -m 0755 .build/release/csmil $(DESTDIR)$(BINDIR)/csmil
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DATADIR)/csmil/models/demo/heads
	sed 's|/usr/bin/csmil|$(BINDIR)/csmil|g' systemd/csmil.service > $(DESTDIR)$(UNITDIR)/csmil.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/csmil.service
	install -m 0644 systemd/csmil.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/csmil.conf
	install -m 0644 systemd/csmil.tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/csmil.conf
	install -m 0644 .build/man/csmil.1 $(DESTDIR)$(MANDIR)/man1/csmil.1
	install -m 0644 .build/man/csmil.toml.5 $(DESTDIR)$(MANDIR)/man5/csmil.toml.5
	install -m 0644 models/demo/model.toml models/demo/feature_normalization.safetensors models/demo/backbones.sha256 \
		models/demo/README.md models/demo/backbone_*.safetensors $(DESTDIR)$(DATADIR)/csmil/models/demo/
	install -m 0644 models/demo/heads/*.pth $(DESTDIR)$(DATADIR)/csmil/models/demo/heads/
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/csmil
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/csmil/csmil.toml ]; then \
		echo "kept the existing $(DESTDIR)$(SYSCONFDIR)/csmil/csmil.toml (new default: etc/csmil.toml)"; \
	else \
		sed 's|/usr/share/csmil/|$(DATADIR)/csmil/|' etc/csmil.toml > $(DESTDIR)$(SYSCONFDIR)/csmil/csmil.toml; \
		chmod 0640 $(DESTDIR)$(SYSCONFDIR)/csmil/csmil.toml; \
	fi
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null && [ -d /run/systemd/system ]; then \
		systemd-sysusers $(SYSUSERSDIR)/csmil.conf && systemd-tmpfiles --create $(TMPFILESDIR)/csmil.conf && \
		systemctl daemon-reload; \
		echo "installed; next: sudo -u csmil csmil doctor --config $(SYSCONFDIR)/csmil/csmil.toml, then systemctl enable --now csmil"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/csmil $(DESTDIR)$(UNITDIR)/csmil.service $(DESTDIR)$(SYSUSERSDIR)/csmil.conf \
		$(DESTDIR)$(TMPFILESDIR)/csmil.conf $(DESTDIR)$(MANDIR)/man1/csmil.1 $(DESTDIR)$(MANDIR)/man5/csmil.toml.5
	@echo "kept $(SYSCONFDIR)/csmil, /var/lib/csmil and $(DATADIR)/csmil (configuration, results, models)"

## Format the sources with the checked-in .swift-format.
format:
	$(SWIFT) format --in-place --recursive Package.swift Sources Tests

lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests

clean:
	rm -rf .build .build-deb .build-manual dist
