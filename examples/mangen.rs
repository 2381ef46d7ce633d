//! Generates the man pages from the CLI definition (src/cli.rs) with clap_mangen:
//! abguard.8 and one abguard-VERB.8 per visible verb.
//!
//!     cargo run --example mangen -- man      # or: make man
//!
//! An example, not part of the crate, so clap_mangen stays a dev-dependency and out of
//! the static initrd binary. tests/manpage.rs renders the same pages and fails when the
//! committed ones in man/ drift from the CLI.

use clap::CommandFactory;
use clap_mangen::roff::{bold, roman, Roff};
use std::path::Path;

/// (file name, page) for every page, in a fixed order.
pub fn pages() -> Vec<(String, Vec<u8>)> {
    // `abguard help` needs no page of its own (and the main page would point at it)
    let mut cmd = abguard::cli::Cli::command().disable_help_subcommand(true);
    // propagates the global options (--disk, --cmdline, ...) into every verb and names
    // the verbs "abguard-status" etc., as their pages are titled
    cmd.build();
    let mut main = render(&cmd);
    main.extend(main_extra().render().into_bytes());
    let mut out = vec![("abguard.8".to_string(), main)];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_display_name().unwrap_or(sub.get_name());
        out.push((format!("{name}.8"), render(sub)));
    }
    out
}

fn render(cmd: &clap::Command) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("abguard")
        .render(&mut buf)
        .expect("rendering to memory");
    buf
}

/// FILES and SEE ALSO for abguard.8: what the CLI definition does not say.
fn main_extra() -> Roff {
    let files = [
        ("/usr/lib/abguard/abguard.conf", "Defaults of the health gate (KEY=VALUE: CRITICAL_UNITS, DEADLINE, MARK_GOOD, ON_FAILURE, VERIFY_USR)."),
        ("/etc/abguard/abguard.conf, /etc/abguard/abguard.conf.d/*.conf", "The machine's settings, read in this order after the defaults; CRITICAL_UNITS from all files are merged. abguard config prints the result; abguard butane writes 10-butane.conf at provisioning."),
        ("/run/abguard/boot.json", "This boot's assessment."),
        ("/run/abguard/needs-health-check, /run/first-boot-healthy", "Flags: a first boot after an upgrade waits for the gate; the boot is known healthy."),
        ("/var/lib/abguard/attempts.jsonl, /var/lib/abguard/attempts.jsonl.1", "History, one JSON line per event with the running totals after it; at 100 lines the file moves to attempts.jsonl.1."),
        ("/usr/lib/dracut/modules.d/50abguard", "The dracut module that runs abguard initrd before switch-root."),
    ];
    let mut r = Roff::new();
    r.control("SH", ["FILES"]);
    for (path, what) in files {
        r.control("TP", []).text([bold(path)]).text([roman(what)]);
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "bootup(7), systemd.special(7) (boot-complete.target), systemd.generator(7), dracut.modules(7)",
    )]);
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
