//! The committed man pages (man/*.8) are what clap_mangen makes of the CLI definition
//! today: a new verb, option or help text without `make man` fails here.

#[path = "../examples/mangen.rs"]
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
        "the man pages drifted from src/cli.rs; regenerate with `make man`:\n{}",
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
