//! The committed man pages (man/*.8) are what clap_mangen makes of the CLI definition
//! today: a new verb, option or help text without `make man` fails here.

#[path = "../examples/mangen/main.rs"]
#[allow(dead_code)] // its main()
mod mangen;

use std::path::Path;

#[test]
fn committed_man_pages_match_the_cli() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = mangen::pages();
    let mut problems = Vec::new();
    for (name, want) in &pages {
        let want = String::from_utf8(want.clone()).unwrap();
        match std::fs::read_to_string(dir.join(name)) {
            Err(e) => problems.push(format!("man/{name}: {e}")),
            Ok(have) if have != want => {
                let (n, (h, w)) = have
                    .lines()
                    .chain(std::iter::repeat(""))
                    .zip(want.lines().chain(std::iter::repeat("")))
                    .enumerate()
                    .find(|(_, (h, w))| h != w)
                    .unwrap();
                problems.push(format!(
                    "man/{name}:{}: committed {h:?}, the CLI gives {w:?}",
                    n + 1
                ));
            }
            Ok(_) => {}
        }
    }
    // a page for a verb that is gone
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".8") && !pages.iter().any(|(n, _)| *n == name) {
            problems.push(format!("man/{name}: no such page any more"));
        }
    }
    assert!(
        problems.is_empty(),
        "the man pages drifted from src/cli/mod.rs; regenerate with `make man`:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_visible_verb_has_a_page_and_the_main_page_lists_it() {
    let pages = mangen::pages();
    let main = String::from_utf8(pages[0].1.clone()).unwrap();
    assert_eq!(pages[0].0, "abguard.8");
    for verb in [
        "status",
        "next",
        "stage",
        "mark-good",
        "rollback",
        "config",
        "butane",
        "pass-gate",
        "fail-gate",
        "disable",
        "enable",
    ] {
        let page = format!("abguard-{verb}.8");
        assert!(pages.iter().any(|(n, _)| *n == page), "{page}");
        // roff escapes the hyphen in the reference
        assert!(
            main.contains(&format!("abguard\\-{}(8)", verb.replace('-', "\\-"))),
            "abguard.8 does not list {verb}"
        );
    }
    // the units' Documentation=man:abguard(8) has somewhere to go
    assert!(main.starts_with(".ie") && main.contains(".TH abguard 8 "));
    // hidden verbs (the generator) and `help` have no page
    assert!(!pages
        .iter()
        .any(|(n, _)| n.contains("generator") || n.contains("help")));
}

/// `.SH` name → its lines, in page order.
fn sections(page: &str) -> Vec<(String, Vec<&str>)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in page.lines() {
        if let Some(h) = line.strip_prefix(".SH ") {
            out.push((h.trim_matches('"').to_string(), Vec::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push(line);
        }
    }
    out
}

fn page(name: &str) -> String {
    let pages = mangen::pages();
    let (_, p) = pages.iter().find(|(n, _)| n == name).expect(name);
    String::from_utf8(p.clone()).unwrap()
}

/// What an operator looks for, on every page and in this order.
#[test]
fn every_page_has_the_sections_an_operator_looks_for() {
    let want = [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "EXIT STATUS",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ];
    for (name, p) in mangen::pages() {
        let p = String::from_utf8(p).unwrap();
        let have: Vec<String> = sections(&p)
            .into_iter()
            .map(|(h, _)| h)
            .filter(|h| want.contains(&h.as_str()))
            .collect();
        assert_eq!(have, want, "{name}");
        for (h, body) in sections(&p) {
            assert!(
                body.iter()
                    .any(|l| !l.trim().is_empty() && !l.starts_with('.')),
                "{name}: {h} is empty"
            );
        }
        // every example is an abguard command line
        let ex = sections(&p)
            .into_iter()
            .find(|(h, _)| h == "EXAMPLES")
            .unwrap()
            .1;
        assert!(
            ex.iter().any(|l| l.starts_with("\\fBabguard ")),
            "{name}: no command in EXAMPLES"
        );
    }
}

/// Each OPTIONS entry (`.TP`, the option, its text) has a description, and so does each
/// visible option in the CLI definition.
#[test]
fn every_option_is_described() {
    for (name, p) in mangen::pages() {
        let p = String::from_utf8(p).unwrap();
        let opts = sections(&p)
            .into_iter()
            .find(|(h, _)| h == "OPTIONS")
            .unwrap()
            .1;
        for (i, l) in opts.iter().enumerate() {
            if *l == ".TP" {
                let text = opts.get(i + 2).copied().unwrap_or("");
                assert!(
                    !text.trim().is_empty() && !text.starts_with('.'),
                    "{name}: {} has no description",
                    opts[i + 1]
                );
            }
        }
    }
    use clap::CommandFactory;
    let mut cmd = abguard::cli::Cli::command();
    cmd.build();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        for a in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            assert!(
                a.get_help()
                    .is_some_and(|h| !h.to_string().trim().is_empty()),
                "{} --{}: no help text",
                sub.get_name(),
                a.get_id()
            );
        }
    }
}

/// A page lists the options its verb takes, with their value placeholders, and not the
/// probe options of verbs that read a disk.
#[test]
fn each_page_shows_only_its_verbs_options() {
    let has =
        |p: &str, opt: &str| p.contains(&format!("\\fB\\-\\-{}\\fR", opt.replace('-', "\\-")));
    for verb in ["butane", "config", "read-usr"] {
        let p = page(&format!("abguard-{verb}.8"));
        for opt in ["disk", "cmdline", "sysfs", "dev", "mountinfo", "run-dir"] {
            assert!(!has(&p, opt), "abguard-{verb}.8 lists --{opt}");
        }
    }
    for verb in ["status", "next", "initrd", "gate-fail", "verify"] {
        let p = page(&format!("abguard-{verb}.8"));
        for opt in ["disk", "cmdline", "sysfs", "mountinfo", "usr"] {
            assert!(has(&p, opt), "abguard-{verb}.8 lacks --{opt}");
        }
    }
    // the main page lists only what every verb takes
    assert!(!has(&page("abguard.8"), "disk"));
    // SYNOPSIS with placeholders: `--disk PATH`, `--partition N` (required: no brackets)
    let syn = |p: &str| {
        sections(p)
            .into_iter()
            .find(|(h, _)| h == "SYNOPSIS")
            .unwrap()
            .1
            .join("\n")
    };
    let status = syn(&page("abguard-status.8"));
    assert!(
        status.contains("[\\fB\\-\\-disk\\fR \\fIPATH\\fR]"),
        "{status}"
    );
    assert!(
        status.contains("[\\fB\\-\\-history\\fR \\fIN\\fR]"),
        "{status}"
    );
    let stage = syn(&page("abguard-stage.8"));
    assert!(
        stage.contains(" \\fB\\-\\-partition\\fR \\fIN\\fR "),
        "{stage}"
    );
}

/// EXIT STATUS lists exactly the codes abguard::exit::codes gives each verb (and the
/// main page the whole table), with the table's meaning.
#[test]
fn exit_status_per_verb() {
    use abguard::exit::{codes, TABLE};
    let codes_of = |name: &str| -> Vec<String> {
        let p = page(name);
        let body = sections(&p)
            .into_iter()
            .find(|(h, _)| h == "EXIT STATUS")
            .unwrap()
            .1;
        body.iter()
            .filter_map(|l| l.strip_prefix("\\fB")?.strip_suffix("\\fR"))
            .map(str::to_string)
            .collect()
    };
    let all: Vec<String> = TABLE.iter().map(|(c, _)| c.code().to_string()).collect();
    assert_eq!(codes_of("abguard.8"), all);
    for (name, _) in mangen::pages().iter().skip(1) {
        let verb = name.trim_start_matches("abguard-").trim_end_matches(".8");
        let want: Vec<String> = codes(verb).iter().map(|c| c.code().to_string()).collect();
        assert_eq!(codes_of(name), want, "{name}");
    }
    assert_eq!(codes_of("abguard-status.8"), ["0", "1", "2", "5"]);
    assert_eq!(codes_of("abguard-read-usr.8"), ["0", "1", "2", "4"]);
}

/// Every EXAMPLES command line is one the CLI accepts (parsed as the shell would split
/// it, up to a redirection or `&&`).
#[test]
fn examples_parse() {
    use clap::Parser;
    let mut bad = Vec::new();
    for (name, page) in mangen::pages() {
        let page = String::from_utf8(page).unwrap();
        let ex = sections(&page)
            .into_iter()
            .find(|(h, _)| h == "EXAMPLES")
            .map(|(_, l)| l.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap_or_default();
        let mut lines = ex.iter();
        while let Some(l) = lines.next() {
            if l != ".IP" {
                continue;
            }
            let cmd = lines.next().unwrap();
            let cmd = cmd
                .trim_start_matches("\\fB")
                .trim_end_matches("\\fR")
                .replace("\\-", "-")
                .replace("\\*(Aq", "'");
            let mut words: Vec<String> = Vec::new();
            let mut quoted: Option<String> = None;
            for w in cmd.split(' ') {
                if let Some(q) = quoted.as_mut() {
                    q.push(' ');
                    q.push_str(w.trim_end_matches('\''));
                    if w.ends_with('\'') {
                        words.push(quoted.take().unwrap());
                    }
                    continue;
                }
                if [">", "&&", "|"].contains(&w) {
                    break;
                }
                match w.strip_prefix('\'') {
                    Some(r) if r.ends_with('\'') => words.push(r.trim_end_matches('\'').into()),
                    Some(r) => quoted = Some(r.to_string()),
                    None => words.push(w.to_string()),
                }
            }
            if let Err(e) = abguard::cli::Cli::try_parse_from(&words) {
                bad.push(format!("{name}: {cmd}: {}", e.kind()));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
