//! The documentation a newcomer follows: README.md stays short, every relative link in it
//! and under docs/ resolves (file and #anchor), every docs/ page is reachable from the
//! index, the exit-code table is src/exit.rs's, and docs/design.md names every src/ file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn pages() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    v.sort();
    v
}

/// The text outside fenced code blocks.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    for l in text.lines() {
        if l.trim_start().starts_with("```") {
            code = !code;
            continue;
        }
        if !code {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// `[text](target)` targets, inline code removed.
fn links(text: &str) -> Vec<String> {
    let text: String = prose(text)
        .split('`')
        .step_by(2)
        .collect::<Vec<_>>()
        .join("");
    let mut v = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            v.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    v
}

/// GitHub's anchors of a page's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn readme_is_short() {
    let n = read(&repo().join("README.md")).lines().count();
    assert!(
        n <= 210,
        "README.md has {n} lines; the rest belongs under docs/"
    );
}

#[test]
fn every_relative_link_resolves() {
    let mut files = vec![repo().join("README.md")];
    files.extend(pages());
    let mut bad = Vec::new();
    for f in &files {
        let text = read(f);
        for l in links(&text) {
            if l.contains("://") || l.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = l.split_once('#').unwrap_or((&l, ""));
            let target = if path.is_empty() {
                f.clone()
            } else {
                f.parent().unwrap().join(path)
            };
            if !target.exists() {
                bad.push(format!("{}: {l}: no such file", f.display()));
                continue;
            }
            if !anchor.is_empty()
                && target.extension().is_some_and(|x| x == "md")
                && !anchors(&read(&target)).contains(anchor)
            {
                bad.push(format!("{}: {l}: no such heading", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_page_is_in_the_index() {
    let index = read(&repo().join("docs/README.md"));
    let linked: BTreeSet<String> = links(&index).into_iter().collect();
    for p in pages() {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name != "README.md" {
            assert!(
                linked.contains(&name),
                "docs/README.md does not link {name}"
            );
        }
    }
    let readme = read(&repo().join("README.md"));
    assert!(links(&readme).iter().any(|l| l == "docs/README.md"));
}

#[test]
fn design_names_every_source_file() {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let design = read(&repo().join("docs/design.md"));
    let src = repo().join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let missing: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .filter(|f| !design.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/design.md does not name: {missing:?}"
    );
}

/// docs/operator.md's exit-code table is src/exit.rs's, row for row.
#[test]
fn exit_codes_are_the_tables() {
    let doc = read(&repo().join("docs/operator.md"));
    let table = &doc[doc.find("### Exit codes").expect("the table")..];
    let rows: Vec<(i32, String)> = table
        .lines()
        .skip_while(|l| !l.starts_with("|---"))
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cells.get(1)?.parse().ok()?, cells.get(2)?.to_string()))
        })
        .collect();
    let ours: Vec<(i32, String)> = abguard::exit::TABLE
        .iter()
        .map(|(c, m)| (c.code(), m.to_string()))
        .collect();
    assert_eq!(rows, ours);
}
