#!/bin/bash
# Run the cargo-fuzz (libFuzzer) targets in fuzz/ one after the other, each for a bounded
# time, and report per target how many inputs were executed and what was found.
#
# usage: ci/fuzz.sh [-t SECONDS] [--build-only] [TARGET...]
#   -t SECONDS    libFuzzer -max_total_time per target (default: $FUZZ_SECONDS or 60)
#   --build-only  install cargo-fuzz if needed and build the targets, run nothing
#   TARGET...     a subset of `cargo fuzz list` (default: all)
# env: FUZZ_SANITIZER (cargo fuzz -s: none (default; the fuzzed code is safe Rust),
#      address, ...), FUZZ_ARGS (extra libFuzzer flags, e.g. "-seed=1").
#
# Installs cargo-fuzz (with the nightly toolchain it needs) when missing. The checked-in
# seeds in fuzz/corpus/<target>/ are only read; new corpus entries go to
# fuzz/target/corpus/<target>/, crashes to fuzz/artifacts/<target>/, libFuzzer's output to
# fuzz/target/logs/<target>.log. Exits 1 when any target crashed (panic, timeout, OOM).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

secs=${FUZZ_SECONDS:-60}
build_only=
targets=()
while [ $# -gt 0 ]; do
	case "$1" in
	-t)
		[ $# -ge 2 ] || { echo "fuzz.sh: -t needs a value" >&2; exit 2; }
		secs=$2
		shift
		;;
	--build-only) build_only=1 ;;
	-h | --help)
		sed -n '2,16s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	-*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
	*) targets+=("$1") ;;
	esac
	shift
done
[[ $secs =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: seconds must be a whole number > 0, got '$secs'" >&2; exit 2; }
sanitizer=${FUZZ_SANITIZER:-none}
read -r -a extra <<<"${FUZZ_ARGS:-}"

# --- cargo-fuzz and the nightly toolchain it drives, installed once ---
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
	echo "fuzz.sh: installing the nightly toolchain" >&2
	rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
	echo "fuzz.sh: installing cargo-fuzz" >&2
	cargo +nightly install cargo-fuzz --locked
fi

# Release build with debug assertions, so integer overflow panics as it does in the tests.
build_flags=(--sanitizer "$sanitizer" --debug-assertions)
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
echo "fuzz.sh: building ${targets[*]} ($(cargo +nightly fuzz --version))" >&2
cargo +nightly fuzz build "${build_flags[@]}" >&2
[ -z "$build_only" ] || exit 0

mkdir -p fuzz/target/logs
summary=()
failed=0
for t in "${targets[@]}"; do
	[ -d "fuzz/corpus/$t" ] || { echo "fuzz.sh: no seed corpus fuzz/corpus/$t" >&2; exit 2; }
	work=$ROOT/fuzz/target/corpus/$t
	arts=$ROOT/fuzz/artifacts/$t
	log=$ROOT/fuzz/target/logs/$t.log
	mkdir -p "$work" "$arts"
	args=(-max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
		-artifact_prefix="$arts/")
	[ ! -f "fuzz/dict/$t.dict" ] || args+=(-dict="$ROOT/fuzz/dict/$t.dict")
	before=$(find "$arts" -maxdepth 1 -type f | wc -l)
	echo "fuzz.sh: $t for ${secs}s (log: fuzz/target/logs/$t.log)" >&2
	rc=0
	cargo +nightly fuzz run "${build_flags[@]}" "$t" "$work" "$ROOT/fuzz/corpus/$t" -- \
		"${args[@]}" "${extra[@]}" >"$log" 2>&1 || rc=$?
	# "Done N runs in S second(s)" on a clean finish; the final stats are printed either way
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	[ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
	corp=$(grep -o 'corp: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
	after=$(find "$arts" -maxdepth 1 -type f | wc -l)
	if [ "$rc" -ne 0 ]; then
		failed=1
		result="CRASH (exit $rc)"
		{
			echo "fuzz.sh: $t failed, from its log:"
			grep -m1 -A1 "panicked at" "$log" ||
				grep -m1 -E "ERROR: libFuzzer|out-of-memory|Timeout|deadly signal" "$log" || tail -n 5 "$log"
			grep -E "Test unit written to|^Base64:" "$log"
			grep -A2 "^Minimize test case with:" "$log" | grep "cargo fuzz tmin" | sed "s/^\t*/minimise: cargo +nightly /; s/cargo +nightly cargo /cargo +nightly /"
		} >&2 || true
	else
		result="ok"
	fi
	[ "$after" -le "$before" ] || result="$result, $((after - before)) new artifact(s) in fuzz/artifacts/$t/"
	summary+=("$(printf '%-16s %12s runs  cov %6s  corpus %5s  %s' "$t" "${runs:-?}" "${cov:-?}" "${corp:-?}" "$result")")
done

echo
echo "fuzz.sh: ${secs}s per target, sanitizer $sanitizer"
printf '%s\n' "${summary[@]}"
[ "$failed" -eq 0 ] || echo "a crash: minimise it (cargo fuzz tmin), save it under fuzz/regressions/<target>/; tests/fuzz_regressions.rs replays it"
exit "$failed"
