//! The Flatcar ebuild (packaging/coreos-overlay/sys-apps/abguard/abguard-9999.ebuild)
//! installs exactly what `make install` does, file for file, mode for mode, link for
//! link; and the installed tree holds everything its units and the dracut module refer
//! to: ExecStart= programs, units named in .wants links and by other units, the
//! generator link's target, the files module-setup.sh takes from $moddir, the man page.
//!
//! The ebuild's src_install is read as data: it must stay a list of the plain install
//! commands below (dobin, doins, doexe, doman, insinto, exeinto, dosym,
//! systemd_dounit, systemd_enable_service); anything else fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const EBUILD: &str = "packaging/coreos-overlay/sys-apps/abguard/abguard-9999.ebuild";
const UNITDIR: &str = "/usr/lib/systemd/system";
const MODDIR: &str = "/usr/lib/dracut/modules.d/50abguard";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_abguard"))
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    /// A regular file: where its bytes come from, and its mode.
    File { src: PathBuf, mode: u32 },
    /// A symlink and its target, as written.
    Link(String),
}

/// Shell words of one line: whitespace-separated, double and single quotes removed.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut cur, mut quote, mut any) = (String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// `dir/pre*suf` against the repository; other arguments as they are.
fn expand(repo: &Path, arg: &str) -> Vec<PathBuf> {
    let p = Path::new(arg);
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    let Some((pre, suf)) = name.split_once('*') else {
        return vec![repo.join(p)];
    };
    let dir = repo.join(p.parent().unwrap());
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|f| {
            let n = f.file_name().unwrap().to_string_lossy();
            n.len() >= pre.len() + suf.len() && n.starts_with(pre) && n.ends_with(suf)
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "{arg} matches nothing");
    v
}

/// The lines of a shell function's body, `name() {` to the `}` in column 0.
fn function_body<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let start = format!("{name}() {{");
    let mut lines = text.lines().skip_while(|l| l.trim_end() != start);
    assert!(lines.next().is_some(), "no {name}() in the ebuild");
    lines.take_while(|l| *l != "}").collect()
}

/// What the ebuild's src_install puts where (paths absolute, as in the image), with the
/// `cryptsetup` USE flag set or not; `helper` stands for the feature build it installs.
fn ebuild_tree(repo: &Path, bin: &Path, helper: &Path, cryptsetup: bool) -> BTreeMap<String, Node> {
    let text = std::fs::read_to_string(repo.join(EBUILD)).unwrap();
    let mut tree = BTreeMap::new();
    let (mut insdir, mut exedir) = (None::<String>, None::<String>);
    let mut put = |dest: String, node: Node| {
        assert!(
            tree.insert(dest.clone(), node).is_none(),
            "the ebuild installs {dest} twice"
        );
    };
    let file = |src: &Path, mode| {
        assert!(
            src.is_file(),
            "the ebuild installs {} which does not exist",
            src.display()
        );
        Node::File {
            src: src.to_path_buf(),
            mode,
        }
    };
    let base = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    // the `if use FLAG; then` blocks around us: whether each one is taken
    let mut taken: Vec<bool> = Vec::new();
    for line in function_body(&text, "src_install") {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line {
            "if use cryptsetup; then" => {
                taken.push(cryptsetup);
                continue;
            }
            "fi" => {
                taken.pop().expect("fi without if in src_install");
                continue;
            }
            _ => {}
        }
        assert!(
            !line.starts_with("if ") && !line.starts_with("else"),
            "{EBUILD}: src_install has {line:?}; tests/packaging.rs only knows \
             `if use cryptsetup; then` ... `fi`"
        );
        if taken.contains(&false) {
            continue;
        }
        let w = words(line);
        let args: Vec<PathBuf> = w[1..]
            .iter()
            .flat_map(|a| match a.as_str() {
                "$(cargo_target_dir)/abguard" => vec![bin.to_path_buf()],
                "${WORKDIR}/abguard-cryptsetup" => vec![helper.to_path_buf()],
                a => expand(repo, a),
            })
            .collect();
        match w[0].as_str() {
            "insinto" => insdir = Some(w[1].clone()),
            "exeinto" => exedir = Some(w[1].clone()),
            "doins" | "doexe" => {
                let (dir, mode) = if w[0] == "doins" {
                    (insdir.as_deref().expect("doins before insinto"), 0o644)
                } else {
                    (exedir.as_deref().expect("doexe before exeinto"), 0o755)
                };
                for a in &args {
                    put(format!("{dir}/{}", base(a)), file(a, mode));
                }
            }
            "dobin" => {
                for a in &args {
                    put(format!("/usr/bin/{}", base(a)), file(a, 0o755));
                }
            }
            "doman" => {
                for a in &args {
                    let n = base(a);
                    let section = n.rsplit('.').next().unwrap();
                    put(format!("/usr/share/man/man{section}/{n}"), file(a, 0o644));
                }
            }
            "systemd_dounit" => {
                for a in &args {
                    put(format!("{UNITDIR}/{}", base(a)), file(a, 0o644));
                }
            }
            // systemd.eclass: dosym ../UNIT UNITDIR/TARGET.wants/UNIT
            "systemd_enable_service" => put(
                format!("{UNITDIR}/{}.wants/{}", w[1], w[2]),
                Node::Link(format!("../{}", w[2])),
            ),
            "dosym" => put(w[2].clone(), Node::Link(w[1].clone())),
            other => panic!(
                "{EBUILD}: src_install runs {other:?}, which tests/packaging.rs does not \
                 understand; keep to dobin/doins/doexe/doman/insinto/exeinto/dosym/\
                 systemd_dounit/systemd_enable_service"
            ),
        }
    }
    assert!(taken.is_empty(), "{EBUILD}: an if in src_install has no fi");
    tree
}

/// `make install DESTDIR=<tmp> PREFIX=/usr`, with the binary cargo built for this test;
/// with `helper`, also `WITH_CRYPTSETUP=1` installing it as the cryptsetup build.
fn make_install_with(repo: &Path, bin: &Path, helper: Option<&Path>) -> tempfile::TempDir {
    let dest = tempfile::tempdir().unwrap();
    let bin = bin.to_str().unwrap();
    let mut cmd = Command::new("make");
    cmd.current_dir(repo)
        // -o: take BIN as built, never run cargo from inside cargo test
        .args(["-s", "-o", bin, "install", "PREFIX=/usr"])
        .arg(format!("DESTDIR={}", dest.path().display()))
        .arg(format!("BIN={bin}"));
    if let Some(h) = helper {
        let h = h.to_str().unwrap();
        cmd.args(["-o", h, "WITH_CRYPTSETUP=1"])
            .arg(format!("CRYPTSETUP_BIN={h}"));
    }
    let o = cmd.output().expect("make is needed for this test");
    assert!(
        o.status.success(),
        "make install failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    dest
}

fn make_install(repo: &Path, bin: &Path) -> tempfile::TempDir {
    make_install_with(repo, bin, None)
}

/// A stand-in for the cryptsetup build: the test binary under the helper's name (the
/// test compares where things go and their bytes, not what the helper does).
fn helper_copy(bin: &Path) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(bin, d.path().join("abguard-cryptsetup")).unwrap();
    d
}

/// The installed tree: files and links by absolute path, plus empty directories.
fn walk(root: &Path) -> (BTreeMap<String, Node>, Vec<String>) {
    fn rec(root: &Path, dir: &Path, t: &mut BTreeMap<String, Node>, empty: &mut Vec<String>) {
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            n += 1;
            let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                t.insert(rel, Node::Link(target.to_string_lossy().into_owned()));
            } else if m.is_dir() {
                rec(root, &p, t, empty);
            } else {
                let mode = m.permissions().mode() & 0o7777;
                t.insert(rel, Node::File { src: p, mode });
            }
        }
        if n == 0 {
            empty.push(format!("/{}", dir.strip_prefix(root).unwrap().display()));
        }
    }
    let (mut t, mut e) = (BTreeMap::new(), Vec::new());
    rec(root, root, &mut t, &mut e);
    (t, e)
}

#[test]
fn ebuild_installs_what_make_install_installs() {
    compare_ebuild_and_make(false);
}

#[test]
fn ebuild_with_cryptsetup_installs_what_make_install_with_cryptsetup_installs() {
    compare_ebuild_and_make(true);
}

#[test]
fn cryptsetup_use_flag_is_default_on_and_pulls_libcryptsetup() {
    let text = std::fs::read_to_string(repo().join(EBUILD)).unwrap();
    let var = |name: &str| -> Vec<String> {
        let mut out = Vec::new();
        for part in text.split(&format!("{name}=\"")).skip(1) {
            out.extend(
                part.split('"')
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .map(String::from),
            );
        }
        out
    };
    assert!(
        var("IUSE").iter().any(|f| f == "+cryptsetup"),
        "IUSE must hold +cryptsetup (on by default): {:?}",
        var("IUSE")
    );
    let rdep = var("RDEPEND").join(" ");
    assert!(
        rdep.contains("cryptsetup? ( sys-fs/cryptsetup"),
        "RDEPEND must pull sys-fs/cryptsetup under the flag: {rdep}"
    );
    let kw = var("KEYWORDS");
    for arch in ["amd64", "~amd64", "arm64", "~arm64"] {
        assert!(kw.iter().any(|k| k == arch), "KEYWORDS lack {arch}: {kw:?}");
    }
    let helper = "/usr/lib/abguard/abguard-cryptsetup";
    let (repo, bin) = (repo(), bin());
    let h = helper_copy(&bin);
    let h = h.path().join("abguard-cryptsetup");
    assert!(ebuild_tree(&repo, &bin, &h, true).contains_key(helper));
    assert!(!ebuild_tree(&repo, &bin, &h, false).contains_key(helper));
}

fn compare_ebuild_and_make(cryptsetup: bool) {
    let (repo, bin) = (repo(), bin());
    let hdir = helper_copy(&bin);
    let helper = hdir.path().join("abguard-cryptsetup");
    let ebuild = ebuild_tree(&repo, &bin, &helper, cryptsetup);
    let dest = make_install_with(&repo, &bin, cryptsetup.then_some(helper.as_path()));
    let (made, empty) = walk(dest.path());
    let mut problems = Vec::new();
    for d in empty {
        problems.push(format!(
            "{d}: make install leaves it empty (Portage drops empty directories)"
        ));
    }
    let paths: BTreeSet<&String> = ebuild.keys().chain(made.keys()).collect();
    for p in paths {
        match (made.get(p), ebuild.get(p)) {
            (Some(_), None) => {
                problems.push(format!("{p}: installed by make install, not by the ebuild"))
            }
            (None, Some(_)) => {
                problems.push(format!("{p}: installed by the ebuild, not by make install"))
            }
            (Some(Node::Link(a)), Some(Node::Link(b))) if a != b => {
                problems.push(format!("{p}: make links to {a}, the ebuild to {b}"))
            }
            (Some(Node::File { src: a, mode: ma }), Some(Node::File { src: b, mode: mb })) => {
                if ma != mb {
                    problems.push(format!(
                        "{p}: mode {ma:o} from make, {mb:o} from the ebuild"
                    ));
                }
                if std::fs::read(a).unwrap() != std::fs::read(b).unwrap() {
                    problems.push(format!(
                        "{p}: make installs other bytes than the ebuild's {}",
                        b.display()
                    ));
                }
            }
            (Some(a), Some(b)) if a != b => {
                problems.push(format!("{p}: make installs {a:?}, the ebuild {b:?}"))
            }
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{EBUILD} (USE cryptsetup={cryptsetup}) and `make install` disagree:\n{}",
        problems.join("\n")
    );
}

/// `abguard-failed@nginx.service.service`, `abguard-failed@{}.service` → the template.
fn unit_tokens(text: &str) -> BTreeSet<String> {
    let suffixes = [
        ".service", ".timer", ".path", ".socket", ".target", ".mount",
    ];
    let ok = |c: char| c.is_ascii_alphanumeric() || "_.@-{}%".contains(c);
    text.split(|c: char| !ok(c))
        .filter(|t| t.starts_with("abguard-"))
        .filter_map(|t| {
            let suf = suffixes.iter().find(|s| t.ends_with(*s))?;
            Some(match t.split_once('@') {
                Some((pre, _)) => format!("{pre}@{suf}"),
                None => t.to_string(),
            })
        })
        .collect()
}

fn key_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .flat_map(|(_, v)| v.split_whitespace())
        .collect()
}

/// Everything the installed units, links and the dracut module refer to is installed.
fn check_references(root: &Path, repo: &Path) -> Vec<String> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let mut problems = Vec::new();
    let mut units: BTreeMap<String, String> = BTreeMap::new(); // name -> text
    for dir in [UNITDIR, MODDIR] {
        for e in std::fs::read_dir(at(dir)).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let unit = [
                ".service", ".timer", ".path", ".socket", ".target", ".mount",
            ]
            .iter()
            .any(|s| name.ends_with(s));
            if unit && p.is_file() {
                units.insert(name, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    assert!(
        units.contains_key("abguard-gate.service"),
        "no units found: {units:?}"
    );
    for (name, text) in &units {
        // programs: ours must be installed (others', like mkdir, come with the OS)
        for key in [
            "ExecStart",
            "ExecStartPre",
            "ExecStartPost",
            "ExecStop",
            "ExecStopPost",
            "ExecCondition",
            "ExecReload",
        ] {
            for line in text
                .lines()
                .filter_map(|l| l.trim().strip_prefix(&format!("{key}=")))
            {
                let prog = line.trim_start_matches(['-', '@', ':', '+', '!', '|']);
                let prog = prog.split_whitespace().next().unwrap_or("");
                let base = prog.rsplit('/').next().unwrap();
                if base.starts_with("abguard")
                    && !executable(&at(prog))
                    && !initrd_script_installed(prog, &at)
                {
                    problems.push(format!(
                        "{name}: {key}={prog} is not installed (or not executable)"
                    ));
                }
            }
        }
        for doc in key_values(text, "Documentation") {
            if let Some(page) = doc
                .strip_prefix("man:")
                .filter(|p| p.starts_with("abguard"))
            {
                let (n, s) = page.trim_end_matches(')').split_once('(').unwrap();
                if !at(&format!("/usr/share/man/man{s}/{n}.{s}")).is_file() {
                    problems.push(format!(
                        "{name}: Documentation={doc}: no such man page installed"
                    ));
                }
            }
        }
        // timers and path units start a unit of their own name unless Unit= says otherwise
        if name.ends_with(".timer") || name.ends_with(".path") {
            let target = key_values(text, "Unit")
                .first()
                .map(|u| u.to_string())
                .unwrap_or_else(|| format!("{}.service", name.rsplit_once('.').unwrap().0));
            if target.starts_with("abguard") && !units.contains_key(&target) {
                problems.push(format!("{name}: starts {target}, which is not installed"));
            }
        }
    }
    // units named in units, in the module and in what the generator writes
    let mut sources: Vec<(String, String)> =
        units.iter().map(|(n, t)| (n.clone(), t.clone())).collect();
    sources.push((
        "module-setup.sh".into(),
        std::fs::read_to_string(at(&format!("{MODDIR}/module-setup.sh"))).unwrap(),
    ));
    sources.push((
        "src/verbs/generator.rs".into(),
        std::fs::read_to_string(repo.join("src/verbs/generator.rs")).unwrap(),
    ));
    for (src, text) in &sources {
        for u in unit_tokens(text) {
            if !units.contains_key(&u) {
                problems.push(format!("{src} names {u}, which is not installed"));
            }
        }
    }
    // vendor enablement: every link in X.wants/ points at an installed unit that says
    // WantedBy=X itself
    for e in std::fs::read_dir(at(UNITDIR)).unwrap() {
        let dir = e.unwrap().path();
        let dname = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some((target, kind)) = dname
            .rsplit_once('.')
            .filter(|(_, k)| *k == "wants" || *k == "requires")
        else {
            continue;
        };
        for l in std::fs::read_dir(&dir).unwrap() {
            let link = l.unwrap().path();
            let lname = link.file_name().unwrap().to_string_lossy().into_owned();
            let dest = dir.join(std::fs::read_link(&link).unwrap());
            let Ok(text) = std::fs::read_to_string(&dest) else {
                problems.push(format!("{dname}/{lname}: points at nothing installed"));
                continue;
            };
            let key = if kind == "wants" {
                "WantedBy"
            } else {
                "RequiredBy"
            };
            if !key_values(&text, key).contains(&target) {
                problems.push(format!("{dname}/{lname}: the unit has no {key}={target}"));
            }
        }
    }
    // the generator: a link to the binary, which must be there and executable
    let gens = at("/usr/lib/systemd/system-generators");
    for e in std::fs::read_dir(&gens).unwrap() {
        let g = e.unwrap().path();
        let real = std::fs::canonicalize(&g);
        if !real
            .as_ref()
            .is_ok_and(|r| r.starts_with(root) && executable(r))
        {
            problems.push(format!(
                "generator {} resolves to {real:?}, not an installed program",
                g.display()
            ));
        }
    }
    if !executable(&at("/usr/lib/systemd/system-generators/abguard-generator")) {
        problems.push("abguard-generator is not installed".into());
    }
    // the dracut module: module-setup.sh executable, every $moddir file and the binary
    // it copies (${ABGUARD_BIN:-/usr/bin/abguard}) installed
    let setup = at(&format!("{MODDIR}/module-setup.sh"));
    if !executable(&setup) {
        problems.push(format!("{MODDIR}/module-setup.sh is not executable"));
    }
    let text = std::fs::read_to_string(&setup).unwrap();
    let mut moddir_files = 0;
    for w in text.split(|c: char| c.is_whitespace() || c == '"') {
        if let Some(f) = w
            .strip_prefix("$moddir/")
            .or_else(|| w.strip_prefix("${moddir}/"))
        {
            moddir_files += 1;
            if !at(&format!("{MODDIR}/{f}")).is_file() {
                problems.push(format!(
                    "module-setup.sh installs $moddir/{f}, which is not in {MODDIR}"
                ));
            }
        }
        if let Some(p) = w
            .strip_prefix("${ABGUARD_BIN:-")
            .and_then(|p| p.strip_suffix('}'))
        {
            if !executable(&at(p)) {
                problems.push(format!(
                    "module-setup.sh copies {p}, which is not installed"
                ));
            }
        }
    }
    assert!(
        moddir_files >= 2,
        "found no $moddir files in module-setup.sh"
    );
    problems
}

/// A program the initrd unit runs that the dracut module copies in itself
/// (`inst_script "$moddir/F" PROG` in module-setup.sh), with F executable in the tree.
fn initrd_script_installed(prog: &str, at: &dyn Fn(&str) -> std::path::PathBuf) -> bool {
    let Ok(setup) = std::fs::read_to_string(at(&format!("{MODDIR}/module-setup.sh"))) else {
        return false;
    };
    setup.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().map(|w| w.trim_matches('"')).collect();
        matches!(w.as_slice(), ["inst_script", src, dest] if *dest == prog
        && src.strip_prefix("$moddir/").is_some_and(|f| {
            std::fs::metadata(at(&format!("{MODDIR}/{f}")))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        }))
    })
}

#[test]
fn installed_tree_holds_everything_it_refers_to() {
    let (repo, bin) = (repo(), bin());
    let dest = make_install(&repo, &bin);
    let problems = check_references(dest.path(), &repo);
    assert!(
        problems.is_empty(),
        "make install is missing things:\n{}",
        problems.join("\n")
    );
}

#[test]
fn reference_check_catches_what_is_missing() {
    // the same check on a damaged tree: it must notice
    let (repo, bin) = (repo(), bin());
    let dest = make_install(&repo, &bin);
    let at = |p: &str| dest.path().join(p.trim_start_matches('/'));
    std::fs::remove_file(at(&format!("{MODDIR}/abguard-emergency.sh"))).unwrap();
    std::fs::remove_file(at(&format!("{MODDIR}/abguard-esp.sh"))).unwrap();
    std::fs::remove_file(at(&format!("{UNITDIR}/abguard-deadline.service"))).unwrap();
    std::fs::remove_file(at("/usr/share/man/man8/abguard.8")).unwrap();
    std::fs::remove_file(at("/usr/bin/abguard")).unwrap();
    let p = check_references(dest.path(), &repo).join("\n");
    for want in [
        "module-setup.sh installs $moddir/abguard-emergency.sh",
        "module-setup.sh installs $moddir/abguard-esp.sh",
        "ExecStartPre=/usr/libexec/abguard-esp.sh is not installed",
        "abguard-deadline.timer: starts abguard-deadline.service",
        "Documentation=man:abguard(8): no such man page",
        "ExecStart=/usr/bin/abguard is not installed",
        "module-setup.sh copies /usr/bin/abguard",
        "abguard-generator is not installed",
    ] {
        assert!(p.contains(want), "missed {want:?} in:\n{p}");
    }
}

#[test]
fn ebuild_crates_are_cargo_lock() {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    let mut want = BTreeSet::new();
    for pkg in lock.split("[[package]]").skip(1) {
        let field = |k: &str| {
            pkg.lines()
                .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
                .map(|v| v.trim_end_matches('"').to_string())
        };
        if field("source").is_some_and(|s| s.starts_with("registry+")) {
            want.insert(format!(
                "{}@{}",
                field("name").unwrap(),
                field("version").unwrap()
            ));
        }
    }
    let ebuild = std::fs::read_to_string(repo().join(EBUILD)).unwrap();
    let block = ebuild
        .split("CRATES=\"\n")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a multi-line CRATES=\" block in the ebuild");
    let have: BTreeSet<String> = block.split_whitespace().map(str::to_string).collect();
    let listing: String = want.iter().map(|c| format!("\t\t{c}\n")).collect();
    assert!(
        have == want,
        "the ebuild's CRATES differ from Cargo.lock (missing {:?}, stale {:?}); replace the \
         block with:\n{listing}",
        want.difference(&have).collect::<Vec<_>>(),
        have.difference(&want).collect::<Vec<_>>(),
    );
}

#[test]
fn ebuild_and_metadata_parse() {
    let dir = repo().join("packaging/coreos-overlay/sys-apps/abguard");
    let o = Command::new("bash")
        .arg("-n")
        .arg(dir.join("abguard-9999.ebuild"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])",
        ])
        .arg(dir.join("metadata.xml"))
        .output()
        .expect("python3 is needed for this test");
    assert!(
        o.status.success(),
        "metadata.xml: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
