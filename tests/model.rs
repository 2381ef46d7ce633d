//! Model check of the A/B state machine: every sequence of events up to depth 64,
//! breadth-first with deduplicated states, driving the binary's own decision functions
//! (ab::*, assess::assess, and the health gate decide::gate::gate over each update's
//! unit timeline) and its GPT code (gpt::Table read and write, through a disk that can
//! lose power between any two writes). The model has no copy of the gate's rules: what
//! a booted update's critical unit does is a timeline of systemd states, and the real
//! decision says pass, fail (and which event) or wait until the deadline.
//!
//! State: the disk (both GPT copies, byte for byte), what each slot holds (a good
//! update or one of the ways an update can be bad), which slot booted, the boot phase
//! and the /run markers. Events: stage an update (good, a unit that crashes inside the
//! stability window, a crash loop, a hang, bad verity, a failing initrd), boot (GRUB),
//! the initrd assessment, the gate's verdict, update-engine's mark-good, a manual
//! rollback, an operator reboot, and power loss at any write or any time.

mod common;
use abguard::config::{timespan::Span, Config};
use abguard::decide::ab;
use abguard::decide::assess::{self, Facts, Verdict};
use abguard::decide::gate::{self, Active, GateAction, GateFacts, UnitState, UnitTrack};
use abguard::decide::verity::{parse_line, Verity};
use abguard::disk::gpt::Table;
use abguard::types::Backing;
use abguard::types::Slot;
use common::*;
use std::collections::{HashMap, HashSet, VecDeque};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Content {
    Empty,
    Good,
    /// Up, then exits 5 s later, inside the stability window (Type=simple, no Restart=).
    ServiceFails,
    /// Restart=always with a failing ExecStartPre: never up, NRestarts rising.
    CrashLoop,
    ServiceHangs,
    VerityBad,
    InitrdFails,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Phase {
    Off,
    Initrd,
    Running,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct St {
    disk: Vec<u8>,
    content: [Content; 2],
    booted: Option<usize>,
    phase: Phase,
    needs_check: bool,
    healthy: bool,
    marked: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// what the machine does by itself
    Auto,
    /// an abguard-initiated reboot (rollback)
    AutoReboot,
    /// the operator or the update service
    Operator,
    PowerLoss,
}

const HASH: &str = "abababababababababababababababababababababababababababababababab";

fn table(disk: &[u8]) -> Table {
    Table::read(&mut std::io::Cursor::new(disk), 512).expect("the table always reads")
}

/// Write `slots` with the real write path; the complete result plus every power cut
/// between two writes.
fn writes(disk: &[u8], slots: &[Slot]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut t = table(disk);
    t.set_slots(slots);
    let mut cuts = Vec::new();
    for k in 0..4 {
        let mut dev = PowerCut::new(disk.to_vec(), k, None);
        t.write(&mut dev).unwrap();
        cuts.push(dev.into_image());
    }
    let mut dev = PowerCut::new(disk.to_vec(), usize::MAX, None);
    t.write(&mut dev).unwrap();
    (dev.into_image(), cuts)
}

fn off(disk: Vec<u8>, content: [Content; 2]) -> St {
    St {
        disk,
        content,
        booted: None,
        phase: Phase::Off,
        needs_check: false,
        healthy: false,
        marked: false,
    }
}

fn bad(c: Content) -> bool {
    !matches!(c, Content::Good | Content::Empty)
}

/// What systemd reports of the update's critical unit, second by second.
fn timeline(c: Content) -> Vec<(u64, &'static str, &'static str, &'static str, u32)> {
    match c {
        Content::Good | Content::Empty => vec![
            (0, "activating", "start", "i1", 0),
            (2, "active", "running", "i1", 0),
            (80, "active", "running", "i1", 0),
        ],
        Content::ServiceFails => vec![
            (2, "active", "running", "i1", 0),
            (7, "failed", "failed", "i1", 0),
        ],
        Content::CrashLoop => vec![
            (1, "activating", "start-pre", "i1", 0),
            (2, "activating", "auto-restart", "i1", 1),
        ],
        // a hang never comes up; a bad verity or initrd is stopped before (the initrd,
        // the emergency hook) and otherwise by the gate's own dm-verity look
        Content::ServiceHangs | Content::VerityBad | Content::InitrdFails => vec![
            (0, "activating", "start", "i1", 0),
            (600, "activating", "start", "i1", 0),
        ],
    }
}

/// The real gate over the content's timeline: its verdict, or the deadline's once the
/// timeline ends without one.
fn run_gate(c: Content) -> GateAction {
    // STABLE_FOR=1min, ON_FAILURE=rollback, through the configuration's own mapping
    let policy = Config {
        stable_for: Span(60_000_000),
        ..Config::default()
    }
    .gate_policy();
    let mut f = GateFacts {
        first_boot: true,
        units: vec![UnitTrack::new("web.service")],
        // the gate asks dm-verity again before passing
        verity_problem: matches!(c, Content::VerityBad | Content::InitrdFails)
            .then(|| "dm-verity status C".into()),
        ..GateFacts::default()
    };
    for (t, a, sub, inv, n) in timeline(c) {
        f.now = t * 1_000_000;
        let s = UnitState {
            active: Active::parse(a),
            sub: sub.into(),
            invocation: inv.into(),
            restarts: n,
            result: "success".into(),
        };
        gate::observe(&mut f.units[0], s, f.now);
        let action = gate::gate(&f, &policy);
        if !matches!(action, GateAction::Wait { .. }) {
            return action;
        }
    }
    f.deadline_passed = true;
    gate::gate(&f, &policy)
}

/// Successors of `s`, each with its label and kind.
fn next(s: &St) -> Vec<(String, Kind, St)> {
    let mut out = Vec::new();
    let slots = table(&s.disk).slots();
    // a change written through the real path, with a power cut at every write
    let write =
        |out: &mut Vec<(String, Kind, St)>, label: &str, kind: Kind, new: &[Slot], done: St| {
            let (full, cuts) = writes(&s.disk, new);
            for cut in cuts {
                out.push((
                    format!("{label} (power cut)"),
                    Kind::PowerLoss,
                    off(cut, s.content),
                ));
            }
            out.push((label.to_string(), kind, St { disk: full, ..done }));
        };
    match s.phase {
        Phase::Off => {
            let Some(i) = ab::next_boot(&slots) else {
                return out;
            };
            let mut new = slots.clone();
            new[i].attrs = ab::spend_try(new[i].attrs);
            let booted = St {
                booted: Some(i),
                phase: Phase::Initrd,
                ..off(Vec::new(), s.content)
            };
            write(&mut out, "grub", Kind::Auto, &new, booted);
        }
        Phase::Initrd => {
            let i = s.booted.unwrap();
            if s.content[i] == Content::InitrdFails {
                // abguard's emergency hook: spend on a first boot; otherwise Flatcar's timeout
                if ab::is_first_boot_after_upgrade(&slots, i) {
                    let mut new = slots.clone();
                    if ab::spend_slot(&mut new, i).is_ok() {
                        write(
                            &mut out,
                            "emergency rollback",
                            Kind::AutoReboot,
                            &new,
                            off(Vec::new(), s.content),
                        );
                        return out;
                    }
                }
                out.push((
                    "emergency timeout".into(),
                    Kind::Auto,
                    off(s.disk.clone(), s.content),
                ));
                return out;
            }
            let part = slots[i].partition;
            let status = if s.content[i] == Content::VerityBad {
                "C"
            } else {
                "V"
            };
            let verity = Verity::from_targets(
                &[parse_line(&format!("0 8 verity {status}")).unwrap()],
                &[parse_line(&format!(
                    "0 8 verity 1 254:{part} 254:{part} 4096 4096 1 2 sha256 {HASH} -"
                ))
                .unwrap()],
                Some(HASH.into()),
            );
            let facts = Facts {
                slots: Ok(slots.clone()),
                from_cmdline: Some(Ok(part)),
                from_sysfs: Ok(Backing {
                    chain: vec![format!("vda{part}")],
                    partition: part,
                    disk: "vda".into(),
                }),
                same_disk: None,
                verity,
            };
            let a = assess::assess(&facts);
            let running = St {
                phase: Phase::Running,
                ..s.clone()
            };
            match a.verdict {
                Verdict::Rollback => write(
                    &mut out,
                    "initrd rollback",
                    Kind::AutoReboot,
                    &a.new_slots.unwrap(),
                    off(Vec::new(), s.content),
                ),
                Verdict::NeedsHealthCheck => out.push((
                    "initrd: needs check".into(),
                    Kind::Auto,
                    St {
                        needs_check: true,
                        ..running
                    },
                )),
                _ => out.push((
                    "initrd: healthy".into(),
                    Kind::Auto,
                    St {
                        healthy: true,
                        ..running
                    },
                )),
            }
        }
        Phase::Running => {
            let i = s.booted.unwrap();
            out.push((
                "power loss".into(),
                Kind::PowerLoss,
                off(s.disk.clone(), s.content),
            ));
            if s.needs_check && !s.healthy {
                let gate = match run_gate(s.content[i]) {
                    GateAction::Pass => None,
                    GateAction::Fail {
                        failure,
                        rollback: true,
                    } => Some(failure.event()),
                    other => panic!("the gate gave {other:?} for {:?}", s.content[i]),
                };
                match gate {
                    None => out.push((
                        "gate passed".into(),
                        Kind::Auto,
                        St {
                            healthy: true,
                            needs_check: false,
                            ..s.clone()
                        },
                    )),
                    Some(why) => {
                        // gate-fail: act only when the disk agrees this is a first boot
                        let mut new = slots.clone();
                        if ab::is_first_boot_after_upgrade(&slots, i)
                            && ab::spend_slot(&mut new, i).is_ok()
                        {
                            write(
                                &mut out,
                                why.as_str(),
                                Kind::AutoReboot,
                                &new,
                                off(Vec::new(), s.content),
                            );
                        }
                    }
                }
                return out;
            }
            if s.healthy && !s.marked {
                // update-engine (flatcar-setgoodroot) on a boot known to be healthy
                let mut new = slots.clone();
                ab::mark_good(&mut new, i);
                write(
                    &mut out,
                    "update-engine marks good",
                    Kind::Auto,
                    &new,
                    St {
                        marked: true,
                        ..s.clone()
                    },
                );
                return out;
            }
            let other = 1 - i;
            for c in [
                Content::Good,
                Content::ServiceFails,
                Content::CrashLoop,
                Content::ServiceHangs,
                Content::VerityBad,
                Content::InitrdFails,
            ] {
                let mut new = slots.clone();
                ab::stage(&mut new, other);
                let mut content = s.content;
                content[other] = c;
                write(
                    &mut out,
                    &format!("stage {c:?}"),
                    Kind::Operator,
                    &new,
                    St {
                        content,
                        ..s.clone()
                    },
                );
            }
            let mut new = slots.clone();
            if ab::rollback(&mut new, other, false).is_ok() {
                write(&mut out, "manual rollback", Kind::Operator, &new, s.clone());
            }
            out.push((
                "reboot".into(),
                Kind::Operator,
                off(s.disk.clone(), s.content),
            ));
        }
    }
    out
}

#[test]
fn each_update_meets_the_gate_it_should() {
    let verdict = |c| match run_gate(c) {
        GateAction::Pass => "pass".to_string(),
        GateAction::Fail { failure, .. } => failure.event().to_string(),
        other => format!("{other:?}"),
    };
    assert_eq!(verdict(Content::Good), "pass");
    assert_eq!(verdict(Content::ServiceFails), "gate-failed");
    assert_eq!(verdict(Content::CrashLoop), "gate-failed");
    assert_eq!(verdict(Content::ServiceHangs), "deadline");
    assert_eq!(verdict(Content::VerityBad), "gate-failed");
}

#[test]
fn the_ab_state_machine_keeps_its_promises() {
    const DEPTH: usize = 64;
    let start = off(tiny_gpt().to_vec(), [Content::Good, Content::Empty]);
    let mut seen: HashMap<St, usize> = HashMap::new();
    let mut queue = VecDeque::new();
    let mut auto_edges: Vec<(usize, usize)> = Vec::new();
    let mut transitions = 0usize;
    seen.insert(start.clone(), 0);
    queue.push_back((start, 0usize));
    let mut deepest = 0;
    while let Some((s, depth)) = queue.pop_front() {
        deepest = deepest.max(depth);
        if depth == DEPTH {
            continue;
        }
        let from = seen[&s];
        let before = table(&s.disk).slots();
        for (label, kind, t) in next(&s) {
            transitions += 1;
            let what = || {
                format!(
                    "{label} from {:?} {:?} booted {:?} slots {:?}",
                    s.phase, s.content, s.booted, before
                )
            };
            let slots = table(&t.disk).slots();
            // 1. some slot is always bootable
            assert!(
                ab::next_boot(&slots).is_some(),
                "nothing bootable after {}",
                what()
            );
            // 2. a bad update never becomes successful
            for (k, c) in t.content.iter().enumerate() {
                assert!(
                    !(bad(*c) && slots[k].attrs.successful),
                    "bad {c:?} marked successful after {}",
                    what()
                );
            }
            // 3. a good update is successful after one healthy boot (update-engine ran)
            if label == "update-engine marks good" {
                let i = s.booted.unwrap();
                assert!(
                    slots[i].attrs.successful,
                    "good slot not successful after {}",
                    what()
                );
            }
            // 5. abguard reboots only the first boot after an upgrade, and never a good one
            if kind == Kind::AutoReboot {
                let i = s.booted.unwrap();
                assert!(
                    ab::is_first_boot_after_upgrade(&before, i),
                    "rebooted a normal boot: {}",
                    what()
                );
                assert!(bad(s.content[i]), "rolled back a good update: {}", what());
            }
            let n = seen.len();
            let to = *seen.entry(t.clone()).or_insert(n);
            if to == n {
                queue.push_back((t, depth + 1));
            }
            if matches!(kind, Kind::Auto | Kind::AutoReboot) {
                auto_edges.push((from, to));
            }
        }
    }
    // 4. no loop the machine can run by itself: the automatic transitions form no cycle
    let mut adj: HashMap<usize, Vec<usize>> = HashMap::new();
    for (a, b) in &auto_edges {
        adj.entry(*a).or_default().push(*b);
    }
    let (mut done, mut on_path) = (HashSet::new(), HashSet::new());
    fn dfs(
        v: usize,
        adj: &HashMap<usize, Vec<usize>>,
        done: &mut HashSet<usize>,
        on: &mut HashSet<usize>,
    ) {
        if done.contains(&v) {
            return;
        }
        assert!(
            on.insert(v),
            "a cycle of automatic transitions through state {v}: an endless loop"
        );
        for &w in adj.get(&v).into_iter().flatten() {
            dfs(w, adj, done, on);
        }
        on.remove(&v);
        done.insert(v);
    }
    for &v in adj.keys() {
        dfs(v, &adj, &mut done, &mut on_path);
    }
    println!(
        "model check: depth {DEPTH}, {} states, {transitions} transitions, {} automatic, fixed point at depth {deepest}",
        seen.len(),
        auto_edges.len()
    );
    assert!(deepest < DEPTH, "the search did not reach a fixed point");
    assert!(seen.len() > 100);
}
