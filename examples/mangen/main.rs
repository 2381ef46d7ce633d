//! Generates the man pages from the CLI definition (src/cli/mod.rs) with clap_mangen:
//! abguard.8 and one abguard-VERB.8 per verb (the internal ones too, though --help hides them).
//!
//!     cargo run --example mangen -- man      # or: make man
//!
//! An example, not part of the crate, so clap_mangen stays a dev-dependency and out of
//! the static initrd binary. NAME, DESCRIPTION and OPTIONS come from the CLI definition;
//! SYNOPSIS is built from it here (clap_mangen's shows no value placeholders); EXIT
//! STATUS is written here and FILES, EXAMPLES and SEE ALSO in text.rs, so their text costs
//! the static binary nothing. tests/manpage.rs renders the same pages and fails when the committed
//! ones in man/ drift from the CLI.

use clap::CommandFactory;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use std::path::Path;
use text::{examples, files, see_also};

mod text;

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
