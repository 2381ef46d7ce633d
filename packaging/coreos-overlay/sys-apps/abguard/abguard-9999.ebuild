# Copyright 2026 abguard authors
# Distributed under the terms of the GNU General Public License v2

# sys-apps/abguard for the Flatcar SDK (sdk_container/src/third_party/coreos-overlay).
# To put it in the image and in the initrd see docs/image-builder.md, "Installing into a Flatcar
# image build". src_install is kept to plain install commands on purpose:
# tests/packaging.rs reads them and checks they install exactly what `make install`
# does, file for file.

EAPI=8

# Where abguard's git repository is published; point this at your mirror.
EGIT_REPO_URI="https://github.com/abguard/abguard.git"

if [[ ${PV} == 9999 ]]; then
	inherit git-r3
	KEYWORDS="~amd64 ~arm64"
	CRATES=""
else
	EGIT_COMMIT="" # the commit this version is built from
	KEYWORDS="amd64 arm64"
	SRC_URI="${EGIT_REPO_URI%.git}/archive/${EGIT_COMMIT}.tar.gz -> ${P}.tar.gz"
	S="${WORKDIR}/${PN}-${EGIT_COMMIT}"

	# Every registry package in Cargo.lock (tests/packaging.rs keeps this in step).
	CRATES="
		aho-corasick@1.1.5
		anstyle@1.0.14
		anyhow@1.0.105
		bindgen@0.72.1
		bitflags@2.13.2
		bumpalo@3.20.4
		cc@1.11.3
		cexpr@0.6.0
		cfg-if@1.0.5
		cfg_aliases@0.2.2
		clang-sys@1.9.1
		clap@4.6.9
		clap_builder@4.6.7
		clap_derive@4.6.9
		clap_lex@1.1.2
		clap_mangen@0.3.3
		crc@3.4.0
		crc-catalog@2.5.0
		darling@0.21.3
		darling_core@0.21.3
		darling_macro@0.21.3
		dlmalloc@0.2.14
		either@1.19.0
		errno@0.3.15
		fastrand@2.5.0
		find-msvc-tools@0.1.15
		fnv@1.0.7
		futures-core@0.3.34
		futures-task@0.3.34
		futures-util@0.3.34
		getrandom@0.4.3
		glob@0.3.4
		gptman@3.1.1
		heck@0.5.0
		ident_case@1.0.1
		itertools@0.13.0
		itoa@1.0.19
		js-sys@0.3.107
		libc@0.2.191
		libcryptsetup-rs@0.16.1
		libcryptsetup-rs-sys@0.7.0
		libloading@0.8.9
		linux-raw-sys@0.12.1
		log@0.4.35
		memchr@2.8.3
		minimal-lexical@0.2.1
		nix@0.32.0
		nom@7.1.3
		once_cell@1.21.4
		per-thread-mutex@0.1.4
		pin-project-lite@0.2.18
		pkg-config@0.3.34
		prettyplease@0.2.37
		proc-macro2@1.0.107
		quote@1.0.47
		r-efi@6.0.0
		regex@1.13.2
		regex-automata@0.4.19
		regex-syntax@0.8.12
		roff@1.1.1
		rustc-hash@2.1.3
		rustix@1.1.6
		rustversion@1.0.23
		semver@1.0.28
		serde@1.0.229
		serde_core@1.0.229
		serde_derive@1.0.229
		serde_json@1.0.154
		shlex@1.3.0
		shlex@2.0.1
		slab@0.4.12
		strsim@0.11.1
		syn@2.0.119
		syn@3.0.10
		tempfile@3.27.0
		thiserror@2.0.21
		thiserror-impl@2.0.21
		unicode-ident@1.0.27
		uuid@1.29.3
		wasm-bindgen@0.2.130
		wasm-bindgen-macro@0.2.130
		wasm-bindgen-macro-support@0.2.130
		wasm-bindgen-shared@0.2.130
		wincode@0.2.5
		wincode-derive@0.2.3
		windows-link@0.2.1
		windows-sys@0.61.2
		zmij@1.0.23
	"
fi

# Cargo.toml rust-version
RUST_MIN_VER="1.85.0"

inherit cargo systemd toolchain-funcs

DESCRIPTION="Health-gated A/B updates with automatic rollback for Flatcar Container Linux"
HOMEPAGE="${EGIT_REPO_URI%.git}"
SRC_URI+=" ${CARGO_CRATE_URIS}"

LICENSE="Apache-2.0"
# Dependent crate licenses
LICENSE+=" Apache-2.0 MIT Unicode-3.0"
# the initrd (coreos-kernel) embeds this package: rebuild it when this changes
SLOT="0/${PVR}"
# The test suite needs loop devices, cgpt and a VM; the project's CI runs it.
RESTRICT="test"

# cryptsetup: `abguard verify` (libcryptsetup) as /usr/lib/abguard/abguard-cryptsetup,
# which abguard-verify-staged.service needs; without it verify-before-trust is skipped.
IUSE="+cryptsetup"

# The units order against update-engine.service and boot-complete.target (systemd);
# the dracut module is picked up by update-bootengine (sys-kernel/bootengine).
RDEPEND="
	sys-apps/systemd
	cryptsetup? ( sys-fs/cryptsetup:= )
"
DEPEND="${RDEPEND}"
# libcryptsetup-rs-sys runs bindgen (libclang) and pkg-config
BDEPEND="
	cryptsetup? (
		dev-build/pkgconf
		llvm-core/clang
	)
"

src_unpack() {
	if [[ ${PV} == 9999 ]]; then
		git-r3_src_unpack
		cargo_live_src_unpack
	else
		cargo_src_unpack
	fi
}

src_compile() {
	# Static, like `make`'s musl build: the dracut module copies the binary into the
	# initrd with inst_simple, which brings no shared libraries along. cargo.eclass
	# passes -crt-static first and RUSTFLAGS after it, so this wins.
	local -x RUSTFLAGS="${RUSTFLAGS} -C target-feature=+crt-static"
	cargo_src_compile --locked --bin abguard

	if "$(tc-getREADELF)" -d "$(cargo_target_dir)/abguard" | grep -q NEEDED; then
		die "abguard is linked dynamically; the initrd copy would not run"
	fi

	if use cryptsetup; then
		# the dynamic userspace build (`make build-cryptsetup`), in its own target dir
		# so it does not overwrite the static binary
		local -x RUSTFLAGS="${RUSTFLAGS% -C target-feature=+crt-static}"
		local -x CARGO_TARGET_DIR="${WORKDIR}/cryptsetup-target"
		cargo_src_compile --locked --bin abguard --features cryptsetup
		cp "$(cargo_target_dir)/abguard" "${WORKDIR}/abguard-cryptsetup" || die
	fi
}

src_install() {
	dobin "$(cargo_target_dir)/abguard"

	systemd_dounit systemd/abguard-gate.service systemd/abguard-failed@.service
	systemd_dounit systemd/abguard-deadline.timer systemd/abguard-deadline.service
	systemd_dounit systemd/abguard-healthy.path
	systemd_dounit systemd/abguard-metrics.service systemd/abguard-metrics.timer
	systemd_dounit systemd/abguard-verify-staged.path systemd/abguard-verify-staged.service
	systemd_dounit systemd/abguard-read-usr.service systemd/abguard-locksmithd.path
	systemd_dounit systemd/abguard-assess.service
	systemd_dounit systemd/abguard-guard-staged.path systemd/abguard-guard-staged.service
	systemd_enable_service multi-user.target abguard-gate.service
	systemd_enable_service multi-user.target abguard-healthy.path
	systemd_enable_service multi-user.target abguard-verify-staged.path
	systemd_enable_service multi-user.target abguard-guard-staged.path
	# the stock-image assessment too: a no-op when the initrd module assessed the boot
	systemd_enable_service sysinit.target abguard-assess.service
	systemd_enable_service multi-user.target abguard-locksmithd.path
	systemd_enable_service timers.target abguard-deadline.timer
	insinto /usr/lib/systemd/system/update-engine.service.d
	doins systemd/update-engine.service.d/50-abguard.conf
	insinto /usr/lib/systemd/system/locksmithd.service.d
	doins systemd/locksmithd.service.d/50-abguard.conf
	dosym ../../../bin/abguard /usr/lib/systemd/system-generators/abguard-generator

	insinto /usr/lib/abguard
	doins systemd/abguard.conf
	insinto /usr/lib/systemd/catalog
	doins systemd/abguard.catalog
	insinto /usr/share/abguard
	doins prometheus/abguard.rules.yml

	if use cryptsetup; then
		exeinto /usr/lib/abguard
		doexe "${WORKDIR}/abguard-cryptsetup"
	fi

	# dracut copies module files with their modes: the scripts must be executable
	exeinto /usr/lib/dracut/modules.d/50abguard
	doexe dracut/50abguard/module-setup.sh dracut/50abguard/abguard-emergency.sh dracut/50abguard/abguard-esp.sh
	insinto /usr/lib/dracut/modules.d/50abguard
	doins dracut/50abguard/abguard-initrd.service

	doman man/*.8
}
