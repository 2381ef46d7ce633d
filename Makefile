# abguard — see README.md. `make` builds the static initrd binary.
TARGET   ?= x86_64-unknown-linux-musl
BIN      := target/$(TARGET)/release/abguard
PREFIX   ?= /usr
DESTDIR  ?=
CARGO    ?= cargo

.PHONY: all build build-cryptsetup deps demo check size test test-arm64 sysext e2e e2e-bios bench fuzz install clean lint man

all: build

# The musl target ships with rustup; add it once if this toolchain lacks it.
$(BIN): $(shell find src -name '*.rs') Cargo.toml Cargo.lock .cargo/config.toml link/discard-eh-frame.ld
	@rustup target list --installed 2>/dev/null | grep -qx '$(TARGET)' || rustup target add $(TARGET)
	$(CARGO) build --release --locked --target $(TARGET)
	@printf 'built %s: %s bytes, %s\n' '$(BIN)' "$$(stat -c %s $(BIN))" "$$(file -b $(BIN) 2>/dev/null | cut -d, -f1-2 || echo static)"

build: $(BIN)

# The userspace build with `abguard verify` (libcryptsetup; dynamic, glibc): installed
# beside the static binary as /usr/lib/abguard/abguard-cryptsetup, which `abguard verify`
# hands over to. Needs libcryptsetup-dev, libclang-dev, pkg-config (ci/install-deps.sh).
CRYPTSETUP_BIN := target/release/abguard
$(CRYPTSETUP_BIN): $(shell find src -name '*.rs') Cargo.toml Cargo.lock
	$(CARGO) build --release --locked --features cryptsetup
	@printf 'built %s: %s bytes, %s\n' '$(CRYPTSETUP_BIN)' "$$(stat -c %s $(CRYPTSETUP_BIN))" "$$(file -b $(CRYPTSETUP_BIN) 2>/dev/null | cut -d, -f1-2 || echo dynamic)"

build-cryptsetup: $(CRYPTSETUP_BIN)

# Host tools the tests need: idempotent and quick (~0.3 s) when all is present, so
# `make test` runs them every time and works on a fresh machine (as root).
deps:
	./ci/install-deps.sh
	./tests/vm/install-deps.sh

# The sample disk comes from examples/demo_image.rs (gptman), so no disk tools are needed.
demo: build
	$(CARGO) build --locked --example demo_image
	./images/demo.sh $(BIN) target/debug/examples/demo_image

# The quick tier, for contributors: every cargo test (unit, image, corpus, oracle tests),
# no root and no VM, a few minutes. A test that lacks root or a tool prints SKIPPED and
# passes; under CI (`CI` set, as .ci/run sets it) it fails instead (tests/common `skip`).
check:
	$(CARGO) test --locked

# The static binary within its size goal (≤ 1 MiB, tests/size.sh; arm64's in test-arm64).
size: build
	./tests/size.sh $(BIN)

# Every tier: the quick tier, loop-device tests (root), the static binary, arm64, the VM
# e2e. Installs what it needs first (deps); `demo` and `check` do not, they need no root.
test: deps size check
	@# abguard verify through libcryptsetup (the userspace build's feature)
	$(CARGO) test --locked --features cryptsetup --test verify
	@# the same image and corpus tests against the static release binary (panic=abort)
	ABGUARD_BIN=$(CURDIR)/$(BIN) $(CARGO) test --locked --test corrupt --test malformed --test initrd --test gate --test cgpt_oracle --test loopdev --test concurrency --test grub_oracle --test hostile --test gate_watch
	./tests/demo-bare.sh
	$(MAKE) test-arm64
	$(MAKE) e2e

# The arm64 static binary (`make TARGET=aarch64-unknown-linux-musl` builds it alone, linked
# by rust-lld: no aarch64 C toolchain), its unit tests and the image tests under qemu-user.
ARM64_TARGET := aarch64-unknown-linux-musl
test-arm64:
	$(MAKE) build TARGET=$(ARM64_TARGET)
	./tests/arm64.sh target/$(ARM64_TARGET)/release/abguard

# The VM scenarios `make test` boots: all of them, each one qemu run through OVMF, Flatcar's
# x86_64-efi GRUB and the two-stage initrd (docs/vm-lab.md: what each stage costs);
# `make e2e E2E_ONLY="3 8"` boots a subset, `FIRMWARE=bios` boots them through SeaBIOS.
E2E_ONLY ?= all
e2e: build
	ONLY="$(filter-out all,$(E2E_ONLY))" ./tests/vm/e2e.sh $(CURDIR)/$(BIN)

# Every scenario through SeaBIOS and GRUB's i386-pc build (make e2e boots UEFI, with two
# scenarios of its own on BIOS, "bios:12 bios:20"). Its own work folder.
e2e-bios: build
	FIRMWARE=bios E2E_WORK=$(CURDIR)/target/e2e-bios ONLY="$(filter-out all,$(E2E_ONLY))" ./tests/vm/e2e.sh $(CURDIR)/$(BIN)

bench: build
	./images/bench.sh $(CURDIR)/$(BIN)
	$(MAKE) build-cryptsetup
	./images/bench-verify.sh $(CURDIR)/$(CRYPTSETUP_BIN) $(CURDIR)/$(BIN)

# The cargo-fuzz targets in fuzz/, FUZZ_SECONDS each, one after the other (installs
# cargo-fuzz when missing; exits non-zero on a crash). Not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz:
	./ci/fuzz.sh -t $(FUZZ_SECONDS)

# rustfmt, clippy on both feature sets, shellcheck on every script (ci/lint.sh); .ci/run
# runs it before the tests. The tools come from ci/install-deps.sh.
lint:
	CARGO="$(CARGO)" ./ci/lint.sh

# man/*.8 from the CLI definition (clap_mangen; tests/manpage.rs fails when they drift)
man:
	$(CARGO) run --locked --example mangen -- man

UNITDIR   := $(PREFIX)/lib/systemd/system
UNITS     := abguard-gate.service abguard-failed@.service abguard-deadline.timer \
             abguard-deadline.service abguard-healthy.path abguard-metrics.service \
             abguard-metrics.timer abguard-verify-staged.path abguard-verify-staged.service \
             abguard-read-usr.service abguard-locksmithd.path abguard-assess.service \
             abguard-guard-staged.path abguard-guard-staged.service
DRACUTDIR := $(PREFIX)/lib/dracut/modules.d/50abguard

# Everything lands under /usr, as on Flatcar (read-only /usr, vendor enablement via
# .wants links in /usr/lib/systemd/system).
# Stock-image mode: the same binary and units as a systemd-sysext image.
sysext: build
	./packaging/sysext.sh $(BIN) target/sysext/abguard.raw

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/abguard
	install -d $(DESTDIR)$(UNITDIR)/multi-user.target.wants $(DESTDIR)$(UNITDIR)/timers.target.wants \
		$(DESTDIR)$(UNITDIR)/update-engine.service.d \
		$(DESTDIR)$(UNITDIR)/locksmithd.service.d $(DESTDIR)$(PREFIX)/lib/systemd/system-generators
	for u in $(UNITS); do install -m 0644 systemd/$$u $(DESTDIR)$(UNITDIR)/$$u; done
	install -m 0644 systemd/update-engine.service.d/50-abguard.conf $(DESTDIR)$(UNITDIR)/update-engine.service.d/
	install -m 0644 systemd/locksmithd.service.d/50-abguard.conf $(DESTDIR)$(UNITDIR)/locksmithd.service.d/
	ln -sf ../abguard-locksmithd.path $(DESTDIR)$(UNITDIR)/multi-user.target.wants/abguard-locksmithd.path
	install -D -m 0644 prometheus/abguard.rules.yml $(DESTDIR)$(PREFIX)/share/abguard/abguard.rules.yml
	ln -sf ../abguard-gate.service $(DESTDIR)$(UNITDIR)/multi-user.target.wants/abguard-gate.service
	ln -sf ../abguard-healthy.path $(DESTDIR)$(UNITDIR)/multi-user.target.wants/abguard-healthy.path
	ln -sf ../abguard-verify-staged.path $(DESTDIR)$(UNITDIR)/multi-user.target.wants/abguard-verify-staged.path
	ln -sf ../abguard-guard-staged.path $(DESTDIR)$(UNITDIR)/multi-user.target.wants/abguard-guard-staged.path
	@# the stock-image assessment, everywhere: it does nothing when the initrd module wrote boot.json
	install -d $(DESTDIR)$(UNITDIR)/sysinit.target.wants
	ln -sf ../abguard-assess.service $(DESTDIR)$(UNITDIR)/sysinit.target.wants/abguard-assess.service
	ln -sf ../abguard-deadline.timer $(DESTDIR)$(UNITDIR)/timers.target.wants/abguard-deadline.timer
	ln -sf ../../../bin/abguard $(DESTDIR)$(PREFIX)/lib/systemd/system-generators/abguard-generator
	install -D -m 0644 systemd/abguard.conf $(DESTDIR)$(PREFIX)/lib/abguard/abguard.conf
	@# journalctl -x explains abguard's rollbacks (src/act/journal.rs's MESSAGE_IDs)
	install -D -m 0644 systemd/abguard.catalog $(DESTDIR)$(PREFIX)/lib/systemd/catalog/abguard.catalog
	@# optional: make build-cryptsetup && make install WITH_CRYPTSETUP=1
	[ -z "$(WITH_CRYPTSETUP)" ] || install -D -m 0755 $(CRYPTSETUP_BIN) $(DESTDIR)$(PREFIX)/lib/abguard/abguard-cryptsetup
	install -D -m 0755 dracut/50abguard/module-setup.sh $(DESTDIR)$(DRACUTDIR)/module-setup.sh
	install -m 0755 dracut/50abguard/abguard-emergency.sh dracut/50abguard/abguard-esp.sh $(DESTDIR)$(DRACUTDIR)/
	install -m 0644 dracut/50abguard/abguard-initrd.service $(DESTDIR)$(DRACUTDIR)/
	install -d $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0644 man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/

clean:
	$(CARGO) clean
