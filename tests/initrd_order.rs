//! abguard's initrd unit beside Ignition's first-boot units: Debian's `ignition` package
//! (/usr/lib/dracut/modules.d/30ignition, the module the VM's `ign` scenario boots) and
//! systemd's own initrd units. On the provisioning boot abguard must judge with the files
//! Ignition writes, so `abguard-initrd.service` comes after `ignition-files.service` and
//! before `initrd.target`, and the order of all these units has no cycle (systemd would
//! break one by dropping a job, silently). The boot itself is tests/vm/e2e.sh, scenario ign.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const IGNITION: &str = "/usr/lib/dracut/modules.d/30ignition";
const SYSTEMD: &str = "/usr/lib/systemd/system";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// "a before b" edges, keyed by unit name.
type Order = BTreeMap<String, BTreeSet<String>>;

/// The After=/Before= of one unit file's [Unit] section, as edges.
fn add_unit(order: &mut Order, name: &str, text: &str) {
    let mut in_unit = false;
    for l in text.lines().map(str::trim) {
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            in_unit = s == "Unit";
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        if !in_unit || l.starts_with('#') {
            continue;
        }
        for other in v.split_whitespace() {
            let (a, b) = match k.trim() {
                "After" => (other, name),
                "Before" => (name, other),
                _ => continue,
            };
            order.entry(a.into()).or_default().insert(b.into());
            order.entry(b.into()).or_default();
        }
    }
}

/// abguard's unit, Ignition's units, and every systemd unit they name (transitively).
fn load(abguard_unit: &str) -> Order {
    let mut order = Order::new();
    add_unit(&mut order, "abguard-initrd.service", abguard_unit);
    let dir = std::fs::read_dir(IGNITION).unwrap_or_else(|e| {
        panic!("{IGNITION}: {e} (Debian's ignition package; ./ci/install-deps.sh installs it)")
    });
    for f in dir.map(|e| e.unwrap().path()) {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".service") || name.ends_with(".target") {
            add_unit(&mut order, &name, &std::fs::read_to_string(&f).unwrap());
        }
    }
    let mut seen = BTreeSet::new();
    loop {
        let names: Vec<String> = order
            .keys()
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        if names.is_empty() {
            return order;
        }
        for n in names {
            let p = Path::new(SYSTEMD).join(&n);
            if let (false, Ok(t)) = (n.starts_with("ignition-"), std::fs::read_to_string(p)) {
                add_unit(&mut order, &n, &t);
            }
            seen.insert(n);
        }
    }
}

fn reaches(order: &Order, from: &str, to: &str) -> bool {
    let mut todo = vec![from.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(n) = todo.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n.clone()) {
            todo.extend(order.get(&n).into_iter().flatten().cloned());
        }
    }
    false
}

/// The units left on an ordering cycle (empty: none), by Kahn's algorithm.
fn cycle(order: &Order) -> Vec<String> {
    let mut indeg: BTreeMap<&str, usize> = order.keys().map(|k| (k.as_str(), 0)).collect();
    for b in order.values().flatten() {
        *indeg.get_mut(b.as_str()).unwrap() += 1;
    }
    let mut ready: Vec<&str> = indeg
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(k, _)| *k)
        .collect();
    while let Some(n) = ready.pop() {
        indeg.remove(n);
        for b in &order[n] {
            let d = indeg.get_mut(b.as_str()).unwrap();
            *d -= 1;
            if *d == 0 {
                ready.push(b);
            }
        }
    }
    indeg.keys().map(|k| k.to_string()).collect()
}

/// What is wrong with abguard's initrd unit beside Ignition's (empty: nothing).
fn problems(abguard_unit: &str) -> Vec<String> {
    let order = load(abguard_unit);
    let mut p = Vec::new();
    let want = [
        ("ignition-files.service", "abguard-initrd.service"),
        ("abguard-initrd.service", "initrd.target"),
        ("ignition-complete.target", "initrd.target"),
    ];
    for (a, b) in want {
        if !reaches(&order, a, b) {
            p.push(format!("{a} is not ordered before {b}"));
        }
    }
    let c = cycle(&order);
    if !c.is_empty() {
        p.push(format!("ordering cycle among {c:?}"));
    }
    p
}

fn abguard_unit() -> String {
    std::fs::read_to_string(repo().join("dracut/50abguard/abguard-initrd.service")).unwrap()
}

#[test]
fn abguard_judges_after_ignition_wrote_the_files() {
    assert_eq!(problems(&abguard_unit()), Vec::<String>::new());
}

#[test]
fn the_check_notices_a_missing_order_or_a_cycle() {
    let unit = abguard_unit();
    let unordered: String = unit
        .lines()
        .filter(|l| !l.starts_with("After=ignition-files.service"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        problems(&unordered),
        ["ignition-files.service is not ordered before abguard-initrd.service"]
    );
    // abguard before Ignition's fetch would judge before the files exist: a cycle
    let cyclic = unit.replace(
        "[Unit]\n",
        "[Unit]\nBefore=ignition-fetch-offline.service\n",
    );
    assert!(
        problems(&cyclic)
            .iter()
            .any(|p| p.starts_with("ordering cycle")),
        "{:?}",
        problems(&cyclic)
    );
}
