//! The stage order of src/, checked from the source: every `crate::` path (and every
//! `super::` path) a file names, outside comments and its `#[cfg(test)]` module, is an
//! edge from that file to the module file it names. The test fails when
//! - a path names no module file (a flat re-export standing in for the real path),
//! - a stage imports from its own level or above (verbs → cli, exit → probe, act,
//!   config → disk → decide → types, safefs; see `LEVELS`),
//! - a verb's file imports from another verb's file or folder (`verbs/NAME.rs` and
//!   `verbs/NAME/*` are one verb; what verbs share lives lower, or in verbs/mod.rs),
//! - or the files form a circle, even inside one stage.
//!
//! A path through a `pub use` below lib.rs (`crate::disk::read_table`, re-exported by
//! disk/mod.rs from disk/change.rs) is followed to the file that defines the name, so
//! the edge and any circle are the real ones; a path through lib.rs's own re-exports is
//! an error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by stage, highest first; a module may import only from lower rows.
const LEVELS: &[&[&str]] = &[
    &["verbs"],
    &["cli", "exit"],
    &["probe", "act", "config"],
    &["disk"],
    &["decide"],
    &["types", "safefs"],
];

fn level(top: &str) -> Option<usize> {
    LEVELS.iter().position(|row| row.contains(&top))
}

/// The module path of a file under src/: `src/probe/dm.rs` → ["probe", "dm"].
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The file defining the longest prefix of `path` that is a module.
fn resolve(src: &Path, path: &[String]) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|n| {
        let dir = path[..n].iter().fold(src.to_path_buf(), |d, p| d.join(p));
        [dir.with_extension("rs"), dir.join("mod.rs")]
            .into_iter()
            .find(|f| f.is_file())
    })
}

/// The code of a file without comments and without its test module.
fn code(text: &str) -> String {
    let body = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    body.lines()
        .map(|l| match l.find("//") {
            // not a `//` inside a string literal: the lines that matter are `use` lines
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path after `crate::` or `super::`, with `{a, b::c}` groups expanded.
fn paths(code: &str, anchor: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(anchor) {
        let before = rest[..i].chars().last();
        rest = &rest[i + anchor.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        expand(rest, &mut Vec::new(), &mut out);
    }
    out
}

fn expand(s: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let s = s.trim_start();
    if let Some(group) = s.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(&group[start..i], &mut prefix.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&group[start..i], &mut prefix.clone(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let name: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if name.is_empty() || name == "self" {
        out.push(prefix.clone());
        return;
    }
    prefix.push(name.clone());
    match s[name.len()..].strip_prefix("::") {
        Some(more) => expand(more, prefix, out),
        None => out.push(prefix.clone()),
    }
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The crate root's `pub use` aliases (`pub use disk::{lock as disklock}` →
/// disklock = disk::lock), so a path through one is still placed in its stage.
fn root_aliases(src: &Path) -> BTreeMap<String, Vec<String>> {
    let text = code(&std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default());
    let mut out = BTreeMap::new();
    for stmt in text.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let (base, items) = match rest.split_once("::{") {
            Some((b, i)) => (b, i.trim_end_matches('}')),
            None => rest.rsplit_once("::").unwrap_or(("", rest)),
        };
        for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (real, alias) = item.split_once(" as ").unwrap_or((item, item));
            let alias = alias.rsplit("::").next().unwrap_or(alias).trim();
            let mut path: Vec<String> = base.split("::").map(String::from).collect();
            path.extend(real.trim().split("::").map(String::from));
            out.insert(alias.to_string(), path);
        }
    }
    out
}

/// Every `pub use` below lib.rs: (the module path of the file, the name it exports) →
/// the full path it stands for (`pub use change::{read_table}` in disk/mod.rs:
/// (["disk"], "read_table") → ["disk", "change", "read_table"]).
fn reexports(src: &Path, files: &[PathBuf]) -> BTreeMap<(Vec<String>, String), Vec<String>> {
    let mut out = BTreeMap::new();
    for f in files.iter().filter(|f| !f.ends_with("lib.rs")) {
        let me = module_of(src, f);
        let text = code(&std::fs::read_to_string(f).unwrap());
        for stmt in text.split(';') {
            let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
                continue;
            };
            for p in paths(&format!("crate::{rest}"), "crate::") {
                let full: Vec<String> = match p.first().map(String::as_str) {
                    Some("crate") => p[1..].to_vec(),
                    // `pub use change::x` in a mod.rs is relative to its module
                    _ => me.iter().cloned().chain(p.iter().cloned()).collect(),
                };
                if let Some(name) = full.last() {
                    out.insert((me.clone(), name.clone()), full.clone());
                }
            }
        }
    }
    out
}

/// `path` with every re-exported step replaced by what it stands for.
fn through_reexports(
    src: &Path,
    path: Vec<String>,
    re: &BTreeMap<(Vec<String>, String), Vec<String>>,
) -> Vec<String> {
    let mut path = path;
    for _ in 0..8 {
        let hit = (1..path.len()).rev().find_map(|n| {
            let key = (path[..n].to_vec(), path[n].clone());
            let real = re.get(&key)?;
            resolve(src, &path[..n])?;
            Some((n, real.clone()))
        });
        let Some((n, real)) = hit else {
            break;
        };
        let mut next = real;
        next.extend(path[n + 1..].iter().cloned());
        if next == path {
            break;
        }
        path = next;
    }
    path
}

/// Which verb a file under verbs/ belongs to: `verbs/gate/watch.rs` and `verbs/gate.rs`
/// are both "gate"; verbs/mod.rs is none.
fn verb_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src.join("verbs")).ok()?;
    let first = rel.iter().next()?.to_string_lossy().into_owned();
    (first != "mod.rs").then(|| first.trim_end_matches(".rs").to_string())
}

/// File → files it imports from, and the problems found on the way.
fn graph(src: &Path) -> (BTreeMap<PathBuf, BTreeSet<PathBuf>>, Vec<String>) {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    files.sort();
    let mut edges = BTreeMap::new();
    let mut problems = Vec::new();
    let aliases = root_aliases(src);
    // a `NAME_tests.rs` file is NAME's `#[cfg(test)] mod tests`, kept beside it
    files.retain(|f| !f.to_string_lossy().ends_with("_tests.rs"));
    let re = reexports(src, &files);
    for f in &files {
        let text = code(&std::fs::read_to_string(f).unwrap());
        let me = module_of(src, f);
        // `super` of src/a/b.rs is `a`; of src/a/mod.rs the crate root
        let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
        let mut targets = Vec::new();
        let rel = f.strip_prefix(src).unwrap().display().to_string();
        for mut p in paths(&text, "crate::") {
            if let Some(real) = p.first().and_then(|a| aliases.get(a)) {
                problems.push(format!(
                    "{rel}: crate::{} goes through a re-export in lib.rs",
                    p.join("::")
                ));
                p.splice(..1, real.iter().cloned());
            }
            targets.push(p);
        }
        for p in paths(&text, "super::") {
            let mut full = parent.clone();
            full.extend(p);
            targets.push(full);
        }
        let set: &mut BTreeSet<PathBuf> = edges.entry(f.clone()).or_default();
        for t in targets {
            if t.is_empty() {
                continue;
            }
            let t = through_reexports(src, t, &re);
            let Some(to) = resolve(src, &t) else {
                problems.push(format!(
                    "{rel}: crate::{} names no module file",
                    t.join("::")
                ));
                continue;
            };
            if &to == f {
                continue;
            }
            let (from_top, to_top) = (me.first(), t.first());
            if let (Some(a), Some(b)) = (from_top, to_top) {
                if a != b {
                    match (level(a), level(b)) {
                        (Some(la), Some(lb)) if la < lb => {}
                        (Some(_), Some(_)) => problems.push(format!(
                            "{rel}: `{a}` imports `{}` from its own stage or above",
                            t.join("::")
                        )),
                        (None, _) => problems.push(format!("{rel}: `{a}` is in no stage")),
                        (_, None) => problems.push(format!("{rel}: `{b}` is in no stage")),
                    }
                }
            }
            // one verb's files do not reach into another's: what they share is in a
            // lower stage or in verbs/mod.rs
            let (from_verb, to_verb) = (verb_of(src, f), verb_of(src, &to));
            if from_verb.is_some() && to_verb.is_some() && from_verb != to_verb {
                problems.push(format!(
                    "{rel}: imports from another verb's file {}",
                    to.strip_prefix(src).unwrap().display()
                ));
            }
            set.insert(to);
        }
    }
    (edges, problems)
}

/// One circle among the files, if there is one.
fn circle(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    fn visit(
        n: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let i = stack.iter().position(|s| s == n).unwrap();
                let mut c = stack[i..].to_vec();
                c.push(n.clone());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut state, &mut Vec::new()))
}

#[test]
fn imports_follow_the_stage_order_and_form_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let src = std::env::var_os("ABGUARD_LAYERS_SRC").map_or(src, PathBuf::from);
    let (edges, problems) = graph(&src);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        edges.len() > 30 && edges.values().map(BTreeSet::len).sum::<usize>() > 60,
        "too few files or imports found: is {} the source?",
        src.display()
    );
    if let Some(c) = circle(&edges) {
        let names: Vec<_> = c
            .iter()
            .map(|p| p.strip_prefix(&src).unwrap().display().to_string())
            .collect();
        panic!("import circle: {}", names.join(" → "));
    }
}

#[test]
fn the_checker_sees_groups_and_circles() {
    let p = paths(
        "use crate::{a::b, c::{d, e::f}};\nlet x = crate::g::h(1); foo_crate::z",
        "crate::",
    );
    let p: Vec<String> = p.iter().map(|v| v.join("::")).collect();
    assert_eq!(p, ["a::b", "c::d", "c::e::f", "g::h"]);
    let mut e = BTreeMap::new();
    let (a, b) = (PathBuf::from("a"), PathBuf::from("b"));
    e.insert(a.clone(), BTreeSet::from([b.clone()]));
    e.insert(b.clone(), BTreeSet::new());
    assert!(circle(&e).is_none());
    e.get_mut(&b).unwrap().insert(a.clone());
    assert!(circle(&e).is_some());
}

/// A tree where a verb reaches into another verb's folder, and a circle that only shows
/// through a re-export in a mod.rs.
#[test]
fn the_checker_sees_verb_folders_and_reexports() {
    let d = tempfile::tempdir().unwrap();
    let w = |rel: &str, text: &str| {
        let p = d.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("lib.rs", "pub mod verbs;\npub mod types;\n");
    w("verbs/mod.rs", "pub mod a;\npub mod b;\n");
    w("verbs/a.rs", "use crate::verbs::b::inner::X;\n");
    w("verbs/b/mod.rs", "pub mod inner;\n");
    w("verbs/b/inner.rs", "use crate::verbs::a;\npub struct X;\n");
    w(
        "types/mod.rs",
        "pub mod one;\npub mod two;\npub use two::Thing;\n",
    );
    w(
        "types/one.rs",
        "use crate::types::Thing;\npub struct Other;\n",
    );
    w(
        "types/two.rs",
        "use crate::types::one::Other;\npub struct Thing;\n",
    );
    let (edges, problems) = graph(d.path());
    let p = problems.join("\n");
    assert!(
        p.contains("verbs/a.rs: imports from another verb's file verbs/b/inner.rs"),
        "{p}"
    );
    assert!(
        p.contains("verbs/b/inner.rs: imports from another verb's file verbs/a.rs"),
        "{p}"
    );
    let one = d.path().join("types/one.rs");
    assert!(
        edges[&one].contains(&d.path().join("types/two.rs")),
        "{edges:?}"
    );
    let c = circle(&edges).expect("the circle through the re-export");
    assert!(c.contains(&one), "{c:?}");
}
