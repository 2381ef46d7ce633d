#!/bin/bash
# The arm64 build (Flatcar's other architecture: Graviton, Ampere, Raspberry Pi) tested on
# this x86-64 machine under qemu-user: the static binary's size and kind, the unit tests
# compiled for aarch64, and the image-level tests run against the aarch64 binary.
# Usage: tests/arm64.sh path/to/aarch64/abguard   (make test-arm64 builds it first)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "$1")
TARGET=aarch64-unknown-linux-musl
QEMU=qemu-aarch64-static
command -v "$QEMU" >/dev/null || { echo "arm64: $QEMU missing (ci/install-deps.sh installs qemu-user-static)" >&2; exit 1; }

kind=$(file -b "$BIN")
case "$kind" in
*"ARM aarch64"*"statically linked"*) ;;
*) echo "arm64: $BIN is not a static aarch64 executable: $kind" >&2; exit 1 ;;
esac
./tests/size.sh "$BIN"
# the emulator runs it, and it is not silently the host binary
[ "$("$QEMU" "$BIN" --version)" = "abguard $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)" ]

# Unit tests, compiled for aarch64 (musl's int ioctl request, the arm64 kernel header).
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=$QEMU cargo test --locked --target "$TARGET" --lib

# Image-level tests against the aarch64 binary: qemu-user does not follow execve, so the
# tests call it through a wrapper that keeps argv[0] (the generator is told by its name).
wrap=$(mktemp -d)
trap 'rm -rf "$wrap"' EXIT
printf '#!/bin/sh\nexec %s -0 "$0" %s "$@"\n' "$QEMU" "$BIN" >"$wrap/abguard"
chmod +x "$wrap/abguard"
ABGUARD_BIN=$wrap/abguard cargo test --locked --test corrupt --test malformed --test initrd \
	--test gate --test cgpt_oracle --test special_files --test manual_history
