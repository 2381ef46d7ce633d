#!/bin/bash
# The lint .ci/run runs before the tests (and `make lint`): rustfmt, clippy on both
# feature sets (the static build and the userspace build with libcryptsetup) with
# warnings as errors, and shellcheck on every shell script in the repository, found by
# its #! line, not by its name (the guest's stand-ins and dracut hooks have none).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}

scripts() {
  git ls-files -z | while IFS= read -r -d '' f; do
    [ -f "$f" ] || continue
    # a #! line, or a sourced library's "# shellcheck shell=bash" first line
    head -n1 "$f" | grep -qE '^(#!.*/(env )?(ba|da)?sh( |$)|# shellcheck shell=(ba|da)?sh$)' && printf '%s\n' "$f"
  done
}

"$CARGO" fmt --check
"$CARGO" clippy --locked --all-targets -- -D warnings
"$CARGO" clippy --locked --all-targets --features cryptsetup -- -D warnings
mapfile -t files < <(scripts)
[ "${#files[@]}" -gt 30 ] || { echo "lint: only ${#files[@]} shell scripts found" >&2; exit 1; }
shellcheck -S warning "${files[@]}"
echo "lint: rustfmt, clippy (default and cryptsetup), shellcheck on ${#files[@]} scripts: clean"
