use super::*;
use crate::decide::gate::{gate, observe, Active, GatePolicy, UnitState, UnitTrack};

const S: u64 = 1_000_000;

fn up(inv: &str) -> UnitState {
    UnitState {
        active: Active::Active,
        sub: "running".into(),
        invocation: inv.into(),
        restarts: 0,
        result: "success".into(),
    }
}

/// A first boot 10 s in: web.service up since 4 s, a check with awkward output, one
/// configuration error, and the gate's verdict on it under a 20 s window.
fn facts() -> (GateFacts, GateAction) {
    let mut web = UnitTrack::new("web.service");
    observe(&mut web, up("i\"1"), 4 * S);
    let mut f = GateFacts {
        now: 10 * S,
        started: 2 * S,
        first_boot: true,
        units: vec![web, UnitTrack::new("db.service")],
        checks: vec![CheckTrack {
            name: "port".into(),
            required: true,
            runs: 2,
            passed: Some(false),
            what: "exit 1".into(),
            output: "line \"1\"\n\ttab \\ ünïcode".into(),
        }],
        config_errors: vec!["abguard.conf:3: what?".into()],
        ..GateFacts::default()
    };
    f.units.pop();
    let policy = GatePolicy {
        stable_for: 20 * S,
        rollback: true,
    };
    let a = gate(&f, &policy);
    (f, a)
}

fn clock(mono_s: u64) -> Clock {
    Clock {
        mono_us: mono_s * S,
        unix: 1_795_689_296 + mono_s,
    }
}

#[test]
fn round_trips_through_its_json() {
    let (f, a) = facts();
    let s = GateState::of(&f, &a, 300 * S, clock(10));
    assert_eq!(s.phase, Phase::Pending);
    assert!(s.window_ends.is_some());
    let back = GateState::parse(s.to_json().as_bytes()).unwrap();
    assert_eq!(back, s);
    // and as the record carries it
    assert_eq!(
        GateState::parse(s.to_value().to_string().as_bytes()).unwrap(),
        s
    );
    // a failed and a passed gate, with units not seen yet
    let mut f2 = f.clone();
    f2.units.push(UnitTrack::new("db.service"));
    f2.deadline_passed = true;
    let failed = GateState::of(
        &f2,
        &gate(
            &f2,
            &GatePolicy {
                stable_for: 0,
                rollback: true,
            },
        ),
        0,
        clock(10),
    );
    assert_eq!(failed.phase, Phase::Failed);
    assert_eq!(
        GateState::parse(failed.to_json().as_bytes()).unwrap(),
        failed
    );
    let passed = GateState::of(&f, &GateAction::Pass, 0, clock(10));
    assert_eq!(
        GateState::parse(passed.to_json().as_bytes()).unwrap(),
        passed
    );
}

#[test]
fn the_countdown_alone_is_no_change() {
    let (mut f, a) = facts();
    let s = GateState::of(&f, &a, 300 * S, clock(10));
    f.now = 11 * S;
    let a2 = gate(
        &f,
        &GatePolicy {
            stable_for: 20 * S,
            rollback: true,
        },
    );
    assert_ne!(a, a2, "the window's countdown moved on");
    let later = GateState::of(&f, &a2, 300 * S, clock(11));
    assert_ne!(later.updated, s.updated);
    assert!(later.same_but_for_the_countdown(&s));
    // the window's countdown is in window_ends, not among what it waits for
    assert!(
        !s.waiting.iter().any(|w| w.starts_with(WINDOW_WAIT)),
        "{:?}",
        s.waiting
    );
    // a check's result is a change
    f.checks[0].runs = 3;
    let changed = GateState::of(&f, &a2, 300 * S, clock(11));
    assert!(!changed.same_but_for_the_countdown(&s));
}

#[test]
fn a_missing_or_mistyped_key_is_an_error_naming_it() {
    let (f, a) = facts();
    let v = GateState::of(&f, &a, 300 * S, clock(10)).to_value();
    for (path, bad) in [
        ("/deadline_unix", None),
        ("/checks/0/required", None),
        ("/checks/0/runs", Some(Value::from("2"))),
        ("/units/0/unit", None),
        ("/state", Some(Value::from("teleported"))),
    ] {
        let mut v = v.clone();
        let (parent, key) = path.rsplit_once('/').unwrap();
        let obj = v.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        match bad {
            None => drop(obj.remove(key)),
            Some(b) => drop(obj.insert(key.into(), b)),
        }
        let e = format!(
            "{:#}",
            GateState::parse(v.to_string().as_bytes()).unwrap_err()
        );
        let word = if key == "state" { "teleported" } else { key };
        assert!(e.contains(word), "{path}: {e}");
    }
}

#[test]
fn explains_a_pending_gate_only() {
    let (mut f, _) = facts();
    f.units[0] = UnitTrack::new("nginx.service");
    f.checks.clear();
    f.config_errors.clear();
    let a = gate(
        &f,
        &GatePolicy {
            stable_for: 0,
            rollback: true,
        },
    );
    let s = GateState::of(&f, &a, 430 * S, clock(10));
    assert_eq!(
        s.explain(1_795_689_296 + 10).unwrap(),
        "health gate pending since 2026-11-26T10:34:58Z: waiting for nginx.service (no state from systemd yet); deadline at 2026-11-26T10:42:06Z (in 7 min)"
    );
    let passed = GateState::of(&f, &GateAction::Pass, 0, clock(10));
    assert!(passed.explain(0).is_none());
}
