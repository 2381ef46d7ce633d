//! Generates the man pages from the CLI definition (src/cli/mod.rs) with clap_mangen:
//! abguard.8 and one abguard-VERB.8 per verb (the internal ones too, though --help hides them).
//!
//!     cargo run --example mangen -- man      # or: make man
//!
//! An example, not part of the crate, so clap_mangen stays a dev-dependency and out of
//! the static initrd binary. NAME, DESCRIPTION and OPTIONS come from the CLI definition;
//! SYNOPSIS is built from it here (clap_mangen's shows no value placeholders); EXIT
//! STATUS, FILES, EXAMPLES and SEE ALSO are written here, so their text costs the static
//! binary nothing. tests/manpage.rs renders the same pages and fails when the committed
//! ones in man/ drift from the CLI.

use clap::CommandFactory;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use std::path::Path;

/// (file name, page) for every page, in a fixed order.
pub fn pages() -> Vec<(String, Vec<u8>)> {
    // `abguard help` needs no page of its own (and the main page would point at it)
    let mut cmd = abguard::cli::Cli::command().disable_help_subcommand(true);
    // propagates the global option (-v) into every verb and names the verbs
    // "abguard-status" etc., as their pages are titled
    cmd.build();
    let mut out = vec![("abguard.8".to_string(), render(&cmd, None))];
    // the internal verbs (hidden from --help) keep their pages: units name them
    for sub in cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "generator")
    {
        let name = sub.get_display_name().unwrap_or(sub.get_name());
        out.push((format!("{name}.8"), render(sub, Some(sub.get_name()))));
    }
    out
}

fn render(cmd: &clap::Command, verb: Option<&str>) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("abguard");
    // each part is rendered on its own and opens with roff's quote-string preamble:
    // the page keeps only the first
    let mut page = String::new();
    let mut add = |part: Vec<u8>| {
        let part = String::from_utf8(part).expect("roff is text");
        let body = part.strip_prefix(PREAMBLE).unwrap_or(&part);
        if page.is_empty() {
            page.push_str(PREAMBLE);
        }
        page.push_str(body);
    };
    let part = |f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut b = Vec::new();
        f(&mut b).expect("rendering to memory");
        b
    };
    add(part(&|w| man.render_title(w)));
    add(part(&|w| man.render_name_section(w)));
    add(synopsis(cmd, verb).render().into_bytes());
    add(part(&|w| man.render_description_section(w)));
    add(part(&|w| man.render_options_section(w)));
    if verb.is_none() {
        add(part(&|w| man.render_subcommands_section(w)));
    }
    add(extra(verb).render().into_bytes());
    page.into_bytes()
}

const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// `abguard VERB --partition N [--json] [--disk PATH] ...`: every visible option in the
/// order of OPTIONS, with its value placeholder; optional ones in brackets.
fn synopsis(cmd: &clap::Command, verb: Option<&str>) -> Roff {
    let mut line: Vec<Inline> = vec![bold(match verb {
        Some(v) => format!("abguard {v}"),
        None => "abguard".into(),
    })];
    for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let Some(long) = a.get_long() else { continue };
        if long == "help" || long == "version" {
            continue;
        }
        let optional = !a.is_required_set();
        line.push(roman(if optional { " [" } else { " " }));
        if let Some(short) = a.get_short() {
            line.push(bold(format!("-{short}")));
            line.push(roman("|"));
        }
        line.push(bold(format!("--{long}")));
        if a.get_num_args().is_some_and(|n| n.takes_values()) {
            let value = a
                .get_value_names()
                .map(|v| v.join(" "))
                .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
            line.push(roman(" "));
            line.push(italic(value));
        }
        if optional {
            line.push(roman("]"));
        }
        if matches!(
            a.get_action(),
            clap::ArgAction::Count | clap::ArgAction::Append
        ) {
            line.push(roman("..."));
        }
    }
    if verb.is_none() {
        line.push(roman(" "));
        line.push(italic("VERB"));
        line.push(roman(" ["));
        line.push(italic("OPTIONS"));
        line.push(roman("]"));
    }
    let mut r = Roff::new();
    r.control("SH", ["SYNOPSIS"]);
    r.text(line);
    if verb.is_none() {
        r.control("br", []);
        r.text([
            bold("abguard"),
            roman(" "),
            bold("--help"),
            roman(" | "),
            bold("--version"),
        ]);
    }
    r
}

/// EXIT STATUS: the codes the verb can end with (abguard::exit::codes), each with its
/// meaning from the one table (abguard::exit::TABLE) and what it means for this verb.
fn exit_status(verb: Option<&str>) -> Vec<(String, String)> {
    use abguard::exit::{codes, ExitCode, TABLE};
    let list: Vec<ExitCode> = match verb {
        None => TABLE.iter().map(|(c, _)| *c).collect(),
        Some(v) => codes(v).to_vec(),
    };
    list.into_iter()
        .map(|c| {
            let general = TABLE.iter().find(|(x, _)| *x == c).map_or("", |(_, m)| *m);
            let text = match exit_detail(verb, c) {
                Some(d) => format!("{}: {d}", capitalized(general)),
                None => format!("{}.", capitalized(general)),
            };
            (c.code().to_string(), text)
        })
        .collect()
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// What a code means for one verb, beyond the table's words.
fn exit_detail(verb: Option<&str>, c: abguard::exit::ExitCode) -> Option<&'static str> {
    use abguard::exit::ExitCode::*;
    Some(match (c, verb) {
        (Ok, Some("initrd" | "assess")) => "a verdict was reached and written (also healthy, indeterminate and rollback verdicts).",
        (Ok, Some("gate-pass" | "gate-fail" | "emergency")) => "also when there was nothing to do (not a first boot after an upgrade) or a rollback was refused and recorded.",
        (Ok, Some("verify")) => "every data block matches the hash tree and the tree the root hash; with --staged also when nothing is staged.",
        (Ok, Some("read-usr")) => "every block was read.",
        (Error, _) => "unreadable disk or file, no valid GPT, unwritable /run, bad configuration.",
        (Refused, None) => "no slot qualifies for booting, the partition is not a USR slot, a rollback target never booted successfully, spending would leave nothing bootable, no gate is pending, or an internal verb that may reboot was typed at a terminal without --yes.",
        (Refused, Some("next")) => "no slot qualifies for booting.",
        (Refused, Some("stage")) => "the partition is not a USR slot, or the loop guard holds the build in it (it failed its first boot; abguard allow releases it).",
        (Refused, Some("mark-good")) => "the partition is not a USR slot, or (without --partition) the booted slot cannot be told.",
        (Refused, Some("rollback")) => "the target is not a USR slot, there is no single other slot, the booted slot cannot be told (name the target with --partition), or the target never booted successfully (without --force).",
        (Refused, Some("verify")) => "the partition is not a USR slot.",
        (Refused, Some("pass-gate" | "fail-gate")) => "no health gate is pending on this boot (or, for fail-gate, the disk says the booted slot is not on its first boot).",
        (Refused, Some(_)) => "stdin is a terminal and neither --yes nor --no-reboot was given: this verb is run by systemd or the initrd and may reboot at once.",
        (VerifyFailed, None) => "verify found the slot corrupted, its hash tree missing or not matching the root hash; read-usr hit a block dm-verity rejects.",
        (VerifyFailed, Some("verify")) => "corrupted (the report names the first bad block), wrong-hash or no-hash-tree. With --unstage-on-failure the staged slot was un-staged.",
        (VerifyFailed, Some(_)) => "a read failed: the report names the first 4 KiB block dm-verity rejected (with --record, also in the history).",
        (Degraded, _) => "the answer is printed, and a DEGRADED line says what to look at: the backup GPT in use or a copy damaged, no USR partition, no bootable slot, configuration errors on this boot, the booted slot not known on a running system.",
        _ => return None,
    })
}

const CONF: (&str, &str) = (
    "/etc/abguard/abguard.conf, /etc/abguard/abguard.conf.d/*.conf",
    "The machine's health-gate settings, read in this order after the defaults; CRITICAL_UNITS from all files are merged. abguard config prints the result; abguard butane writes 10-butane.conf at provisioning.",
);
const DEFAULTS: (&str, &str) = (
    "/usr/lib/abguard/abguard.conf",
    "Defaults of the health gate (KEY=VALUE; the keys are under CONFIGURATION).",
);
const BOOT_JSON: (&str, &str) = (
    "/run/abguard/boot.json",
    "This boot's assessment, written by abguard initrd (or assess).",
);
const FLAGS: (&str, &str) = (
    "/run/first-boot-healthy, /run/abguard/needs-health-check, /run/abguard/indeterminate",
    "Flags: the boot is known healthy; a first boot after an upgrade waits for the gate; the assessment could not decide (the reason inside).",
);
const HISTORY: (&str, &str) = (
    "/var/lib/abguard/attempts.jsonl, /var/lib/abguard/attempts.jsonl.1",
    "History, one JSON line per event with the running totals after it; at 100 lines the file moves to attempts.jsonl.1.",
);
const PROC: (&str, &str) = (
    "/proc/cmdline, /proc/self/mountinfo, /sys/class/block, /dev",
    "Where the booted slot is found (mount.usr=/verity.usr= and the device under /usr); --cmdline, --mountinfo, --sysfs and --dev replace them.",
);
const KERNELS: (&str, &str) = (
    "/boot/flatcar/vmlinuz-a, /boot/flatcar/vmlinuz-b",
    "The slots' kernels, which carry the root hash (64 hex characters at byte 0x40; arm64: 512).",
);
const HELPER: (&str, &str) = (
    "/usr/lib/abguard/abguard-cryptsetup",
    "The libcryptsetup build that the static binary hands verify over to.",
);
const REBOOT_REQUIRED: (&str, &str) = (
    "/run/reboot-required",
    "Touched by flatcar-postinst after staging; abguard-verify-staged.path then runs abguard verify --staged --unstage-on-failure.",
);
const DRACUT: (&str, &str) = (
    "/usr/lib/dracut/modules.d/50abguard",
    "The dracut module that runs abguard initrd before switch-root, and abguard emergency from the emergency hook.",
);
const MAPPER_USR: (&str, &str) = (
    "/dev/mapper/usr",
    "The dm-verity device of the booted /usr.",
);

const CHECKS: (&str, &str) = (
    "/etc/abguard/checks.d/",
    "Health checks: executables the gate runs once the critical units are up, until each exits 0 (a name ending in .wanted is only recorded when it fails).",
);
const GATE_JSON: (&str, &str) = (
    "/run/abguard/gate.json",
    "The health gate's snapshot while it waits (units, window, checks, deadline); abguard status shows it.",
);
const GATE_VERDICT: (&str, &str) = (
    "/run/abguard/gate-verdict",
    "Created once the gate's verdict is taken (by the watcher, a unit's OnFailure= hook, the deadline or an operator), so nobody acts twice.",
);
const DISABLED: (&str, &str) = (
    "/etc/abguard/disabled",
    "abguard disable writes it (since when, why): first boots pass their gate at once; abguard enable removes it.",
);
const TEXTFILE: (&str, &str) = (
    "/var/lib/node_exporter/textfile_collector/abguard.prom",
    "What abguard-metrics.service writes every minute (ABGUARD_TEXTFILE_DIR in the unit sets the directory).",
);

fn files(verb: Option<&str>) -> Vec<(&'static str, &'static str)> {
    match verb {
        None => vec![
            DEFAULTS,
            CONF,
            CHECKS,
            DISABLED,
            BOOT_JSON,
            FLAGS,
            GATE_JSON,
            GATE_VERDICT,
            HISTORY,
            HELD,
            PROC,
            HELPER,
            DRACUT,
        ],
        Some("status") => vec![
            PROC,
            BOOT_JSON,
            FLAGS,
            GATE_JSON,
            GATE_VERDICT,
            HISTORY,
            HELD,
            DISABLED,
            TEXTFILE,
        ],
        Some("pass-gate" | "fail-gate") => vec![FLAGS, GATE_JSON, GATE_VERDICT, HISTORY],
        Some("disable" | "enable") => vec![DISABLED, HISTORY],
        Some("next" | "stage" | "rollback") => vec![PROC],
        Some("mark-good") => vec![PROC],
        Some("initrd") => vec![PROC, BOOT_JSON, FLAGS, HISTORY, DRACUT],
        Some("assess") => vec![PROC, BOOT_JSON, FLAGS, HISTORY],
        Some("gate-pass") => vec![
            DEFAULTS,
            CONF,
            CHECKS,
            DISABLED,
            FLAGS,
            GATE_JSON,
            GATE_VERDICT,
            HISTORY,
        ],
        Some("gate-fail") => vec![DEFAULTS, CONF, DISABLED, FLAGS, GATE_VERDICT, HISTORY],
        Some("emergency") => vec![
            PROC,
            (
                "/run/abguard/emergency.json",
                "The record of the rollback, kept when the history is not reachable yet.",
            ),
            HISTORY,
            DRACUT,
        ],
        Some("config") => vec![DEFAULTS, CONF, CHECKS],
        Some("butane") => vec![(
            "/etc/abguard/abguard.conf.d/10-butane.conf",
            "The settings file the generated config writes on the machine.",
        )],
        Some("verify") => vec![KERNELS, HELPER, REBOOT_REQUIRED, HISTORY],
        Some("read-usr") => vec![MAPPER_USR, HISTORY],
        Some("allow") => vec![HELD, HISTORY],
        Some("guard-staged") => vec![HELD, KERNELS, REBOOT_REQUIRED_GUARD, HISTORY],
        Some(_) => vec![],
    }
}

const HELD: (&str, &str) = (
    "/var/lib/abguard/held.json",
    "The loop guard's held builds: dm-verity root hash, VERSION_ID, the event that failed it and when.",
);
const REBOOT_REQUIRED_GUARD: (&str, &str) = (
    "/run/reboot-required",
    "Touched by flatcar-postinst after staging; abguard-guard-staged.path then runs abguard guard-staged.",
);

/// (what it does, the command line) an operator types.
fn examples(verb: Option<&str>) -> Vec<(&'static str, &'static str)> {
    match verb {
        None => vec![
            (
                "What boots next, what booted, and the last assessment:",
                "abguard status",
            ),
            (
                "The same for a disk image:",
                "abguard status --disk disk.img",
            ),
            (
                "Go back to the other slot on the next boot:",
                "abguard rollback",
            ),
            ("The effective health-gate settings:", "abguard config"),
        ],
        Some("status") => vec![
            (
                "The slots, the next and the booted slot, the last assessment and the history:",
                "abguard status",
            ),
            (
                "As JSON, with the last 50 events:",
                "abguard status --json --history 50",
            ),
            (
                "One line for a login banner; exit 5 when something needs a look:",
                "abguard status --short",
            ),
            ("Of a disk image:", "abguard status --disk disk.img"),
            (
                "For node_exporter's textfile collector (what abguard-metrics.service runs):",
                "abguard status --prometheus --textfile /var/lib/node_exporter/textfile_collector/abguard.prom",
            ),
        ],
        Some("next") => vec![
            (
                "Which partition GRUB would boot, without spending its try:",
                "abguard next --dry-run",
            ),
            (
                "Boot an image as GRUB would (spends one try):",
                "abguard next --disk disk.img --json",
            ),
        ],
        Some("stage") => vec![(
            "Stage USR-B (partition 4) for the next boot:",
            "abguard stage --partition 4",
        )],
        Some("mark-good") => vec![
            (
                "Mark the booted slot good by hand (MARK_GOOD=no):",
                "abguard mark-good",
            ),
            (
                "Mark USR-A good on an image:",
                "abguard mark-good --disk disk.img --partition 3",
            ),
        ],
        Some("rollback") => vec![
            (
                "Boot the other slot next time, then reboot:",
                "abguard rollback && systemctl reboot",
            ),
            (
                "Roll back to a slot that never booted successfully:",
                "abguard rollback --partition 4 --force",
            ),
        ],
        Some("initrd") => vec![
            (
                "What abguard-initrd.service runs before switch-root:",
                "abguard initrd",
            ),
            (
                "Assess without rebooting and show the record:",
                "abguard initrd --no-reboot --json",
            ),
        ],
        Some("assess") => vec![
            (
                "What abguard-assess.service runs on stock images:",
                "abguard assess",
            ),
            (
                "Show the record, never reboot:",
                "abguard assess --no-reboot --json",
            ),
        ],
        Some("gate-pass") => vec![(
            "What abguard-gate.service runs after boot-complete.target:",
            "abguard gate-pass",
        )],
        Some("gate-fail") => vec![
            (
                "What abguard-failed@nginx.service runs when nginx.service failed:",
                "abguard gate-fail --unit nginx.service",
            ),
            (
                "What abguard-deadline.service runs when the deadline passed:",
                "abguard gate-fail",
            ),
        ],
        Some("emergency") => vec![("What the dracut emergency hook runs:", "abguard emergency")],
        Some("config") => vec![
            (
                "The effective settings and the files they came from:",
                "abguard config",
            ),
            ("Of a mounted image:", "abguard config --root /mnt --json"),
        ],
        Some("butane") => vec![
            (
                "A Butane config that gates upgrades on nginx and rolls back after 10 minutes:",
                "abguard butane --critical-unit nginx.service --deadline 10min > abguard.bu",
            ),
            (
                "The Ignition JSON directly:",
                "abguard butane --critical-unit nginx.service --format ignition > config.ign",
            ),
        ],
        Some("verify") => vec![
            (
                "Verify the staged update before rebooting into it:",
                "abguard verify --staged",
            ),
            (
                "What abguard-verify-staged.service runs:",
                "abguard verify --staged --unstage-on-failure",
            ),
            (
                "A slot image against a known root hash:",
                "abguard verify --device usr-b.img --root-hash 0123...cdef --json",
            ),
        ],
        Some("read-usr") => vec![
            (
                "What abguard-read-usr.service runs (VERIFY_USR=yes):",
                "abguard read-usr --record",
            ),
            (
                "Read with O_DIRECT in 8 MiB reads:",
                "abguard read-usr --direct --block-size 8M",
            ),
        ],
        Some("allow") => vec![
            (
                "Let version 3510.2.1 be staged again after its fix was confirmed elsewhere:",
                "abguard allow --version 3510.2.1",
            ),
            ("Release every held build:", "abguard allow --all --json"),
        ],
        Some("guard-staged") => vec![(
            "What abguard-guard-staged.service runs when /run/reboot-required appears:",
            "abguard guard-staged",
        )],
        Some("pass-gate") => vec![
            (
                "Pass the pending gate (the service is fine, a check is wrong):",
                "abguard pass-gate --reason 'INC-42: check fixed upstream'",
            ),
            (
                "Pass it and mark the slot good at once:",
                "abguard pass-gate --mark-good",
            ),
        ],
        Some("fail-gate") => vec![(
            "Give up on this update now (spends the slot, reboots into the other):",
            "abguard fail-gate --reason 'canary errors'",
        )],
        Some("disable") => vec![(
            "Switch the health gate off on this node while debugging:",
            "abguard disable --reason 'INC-42'",
        )],
        Some("enable") => vec![("Switch it on again:", "abguard enable")],
        Some(_) => vec![],
    }
}

fn see_also(verb: Option<&str>) -> String {
    let mut v: Vec<&str> = match verb {
        None => vec![],
        Some(_) => vec!["abguard(8)"],
    };
    v.extend(match verb {
        None => &[
            "bootup(7)",
            "systemd.special(7)",
            "systemd.generator(7)",
            "dracut.modules(7)",
        ][..],
        Some("status") => &[
            "abguard-next(8)",
            "abguard-rollback(8)",
            "abguard-pass-gate(8)",
        ],
        Some("next" | "stage" | "mark-good") => &["abguard-status(8)", "abguard-rollback(8)"],
        Some("rollback") => &["abguard-status(8)", "abguard-mark-good(8)"],
        Some("initrd" | "assess") => &[
            "abguard-gate-pass(8)",
            "abguard-gate-fail(8)",
            "bootup(7)",
            "dracut.modules(7)",
        ],
        Some("gate-pass" | "gate-fail") => &[
            "abguard-initrd(8)",
            "abguard-config(8)",
            "systemd.special(7)",
        ],
        Some("emergency") => &["abguard-initrd(8)", "dracut.modules(7)"],
        Some("config") => &["abguard-butane(8)", "abguard-gate-pass(8)"],
        Some("butane") => &["abguard-config(8)"],
        Some("verify") => &["abguard-read-usr(8)", "veritysetup(8)"],
        Some("read-usr") => &["abguard-verify(8)", "abguard-config(8)"],
        Some("allow" | "guard-staged") => &["abguard-status(8)", "abguard-stage(8)"],
        Some("pass-gate" | "fail-gate") => &["abguard-status(8)", "abguard-mark-good(8)"],
        Some("disable" | "enable") => &["abguard-status(8)", "abguard-config(8)"],
        Some(_) => &[],
    });
    v.join(", ")
}

fn extra(verb: Option<&str>) -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for (code, what) in exit_status(verb) {
        r.control("TP", []).text([bold(code)]).text([roman(what)]);
    }
    // every configuration key, from the one table the loader and butane use
    if matches!(verb, None | Some("config")) {
        r.control("SH", ["CONFIGURATION"]);
        for k in abguard::config::keys::KEYS {
            let default = if k.default.is_empty() {
                "none"
            } else {
                k.default
            };
            r.control("TP", [])
                .text([
                    bold(k.name),
                    roman(format!(
                        " (default: {default}; abguard butane --{})",
                        k.butane
                    )),
                ])
                .text([roman(k.doc)]);
        }
    }
    if verb.is_none() {
        r.control("SH", ["INTERNAL VERBS"]);
        r.text([roman(
            "Run by systemd units and the dracut module, hidden from --help (each has its page): \
             initrd, assess, gate-pass, gate-fail, emergency, guard-staged. Those that may reboot \
             refuse to run with a terminal on stdin unless --yes or --no-reboot is given.",
        )]);
    }
    let files = files(verb);
    if !files.is_empty() {
        r.control("SH", ["FILES"]);
        for (path, what) in files {
            r.control("TP", []).text([bold(path)]).text([roman(what)]);
        }
    }
    r.control("SH", ["EXAMPLES"]);
    for (what, cmd) in examples(verb) {
        r.control("PP", []).text([roman(what)]);
        r.control("IP", []).text([bold(cmd)]);
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(see_also(verb))]);
    r
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "man".into());
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    // pages of verbs that no longer exist go too
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "8") {
            std::fs::remove_file(&p)?;
        }
    }
    for (name, page) in pages() {
        std::fs::write(dir.join(&name), page)?;
        println!("{}", dir.join(&name).display());
    }
    Ok(())
}
