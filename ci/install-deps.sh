#!/bin/bash
# Install what the build and every test tier need on a fresh Debian 12 machine.
# Idempotent and quick when everything is present.
set -euo pipefail

pkgs=(gdisk cgpt cryptsetup-bin e2fsprogs dosfstools mtools squashfs-tools erofs-utils
      util-linux file shellcheck
      # tests/deadline.rs compares spans with systemd-analyze timespan
      systemd hyperfine python3-prometheus-client
      # abguard butane's output: ignition-validate, the Ignition JSON schema, the YAML
      ignition python3-jsonschema python3-yaml
      # tests/packaging.rs runs `make install`
      make
      # tests/prometheus.rs: promtool test rules, a real Prometheus and node_exporter
      prometheus prometheus-node-exporter
      # abguard verify (feature cryptsetup): libcryptsetup-rs-sys runs pkg-config and bindgen
      libcryptsetup-dev libclang-dev pkg-config
      # tests/arm64.sh runs the aarch64 build's tests under qemu-user
      qemu-user-static)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-upgrade --no-install-recommends "${missing[@]}"
fi

# The lint (ci/lint.sh): rustfmt and clippy from the toolchain.
for c in rustfmt clippy; do
	rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

# The static initrd binary is built for musl, on amd64 and arm64; rustup ships both
# targets' libc, and rust-lld links the arm64 one.
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
	rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done
