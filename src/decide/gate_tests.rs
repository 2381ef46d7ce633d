//! Table tests of the gate over timelines: each row is a unit's (or a check's) life
//! second by second and the verdict expected after each step.

use super::*;

const S: u64 = 1_000_000;

/// `a`: ActiveState word; `sub`; `inv`: InvocationID; `n`: NRestarts.
fn st(a: &str, sub: &str, inv: &str, n: u32) -> UnitState {
    UnitState {
        active: Active::parse(a),
        sub: sub.into(),
        invocation: inv.into(),
        restarts: n,
        result: if a == "failed" {
            "exit-code"
        } else {
            "success"
        }
        .into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum E {
    Wait,
    /// Waiting, and the checks may run now.
    WaitChecks,
    Pass,
    /// Fail with rollback; the reason contains the text.
    Back(&'static str),
    /// Fail under ON_FAILURE=report.
    Report(&'static str),
}

fn kind(a: &GateAction) -> String {
    format!("{a:?}")
}

fn matches(a: &GateAction, e: E) -> bool {
    match (a, e) {
        (GateAction::Wait { run_checks, .. }, E::Wait) => !run_checks,
        (GateAction::Wait { run_checks, .. }, E::WaitChecks) => *run_checks,
        (GateAction::Pass, E::Pass) => true,
        (GateAction::Fail { failure, rollback }, E::Back(w) | E::Report(w)) => {
            *rollback == matches!(e, E::Back(_)) && failure.reason().contains(w)
        }
        _ => false,
    }
}

/// One step: at second `t`, each unit's state (in the config's order), then expect.
type Step = (u64, Vec<UnitState>, E);

/// The rows' settings in the configuration's words (the decision sees only the policy;
/// the configuration's own parser is tested in config/): CRITICAL_UNITS, STABLE_FOR in
/// seconds ("10s", "0"), ON_FAILURE.
fn settings(conf: &str) -> (Vec<String>, GatePolicy) {
    let mut units = Vec::new();
    let mut p = GatePolicy {
        stable_for: 60 * S,
        rollback: true,
    };
    for (k, v) in conf.lines().filter_map(|l| l.split_once('=')) {
        match k {
            "CRITICAL_UNITS" => units.extend(v.split(' ').map(String::from)),
            "STABLE_FOR" => p.stable_for = v.trim_end_matches('s').parse::<u64>().unwrap() * S,
            "ON_FAILURE" => p.rollback = v == "rollback",
            _ => panic!("{k}"),
        }
    }
    (units, p)
}

fn policy(stable_s: u64) -> GatePolicy {
    GatePolicy {
        stable_for: stable_s * S,
        rollback: true,
    }
}

fn run(name: &str, conf: &str, steps: &[Step], setup: impl Fn(&mut GateFacts)) {
    let (units, cfg) = settings(conf);
    let mut f = GateFacts {
        first_boot: true,
        units: units.iter().map(|u| UnitTrack::new(u)).collect(),
        ..GateFacts::default()
    };
    setup(&mut f);
    for (i, (t, states, want)) in steps.iter().enumerate() {
        f.now = t * S;
        for (track, s) in f.units.iter_mut().zip(states) {
            observe(track, s.clone(), f.now);
        }
        let got = gate(&f, &cfg);
        assert!(
            matches(&got, *want),
            "{name}, step {i} (t={t}s): expected {want:?}, got {}",
            kind(&got)
        );
    }
}

#[test]
fn timelines_of_one_unit() {
    let up = |inv| st("active", "running", inv, 0);
    let starting = st("activating", "start-pre", "i1", 0);
    let rows: &[(&str, &str, Vec<Step>)] = &[
        (
            "up and staying up through the window",
            "STABLE_FOR=10s",
            vec![
                (0, vec![starting.clone()], E::Wait),
                (2, vec![up("i1")], E::WaitChecks),
                (11, vec![up("i1")], E::WaitChecks),
                (12, vec![up("i1")], E::Pass),
            ],
        ),
        (
            "up, then a crash inside the window (Type=simple, no Restart=)",
            "STABLE_FOR=60s",
            vec![
                (1, vec![up("i1")], E::WaitChecks),
                (
                    8,
                    vec![st("failed", "failed", "i1", 0)],
                    E::Back("nginx.service failed"),
                ),
            ],
        ),
        (
            "up, then exits cleanly inside the window: left active",
            "STABLE_FOR=60s",
            vec![
                (1, vec![up("i1")], E::WaitChecks),
                (
                    8,
                    vec![st("inactive", "dead", "i1", 0)],
                    E::Back("left active"),
                ),
            ],
        ),
        (
            "NRestarts rising while it looks active (Restart=always, fast)",
            "STABLE_FOR=60s",
            vec![
                (1, vec![up("i1")], E::WaitChecks),
                (
                    5,
                    vec![st("active", "running", "i2", 1)],
                    E::Back("restarted 1 times"),
                ),
            ],
        ),
        (
            "a new InvocationID without NRestarts (restarted by hand)",
            "STABLE_FOR=60s",
            vec![
                (1, vec![up("i1")], E::WaitChecks),
                (5, vec![up("i2")], E::Back("new InvocationID")),
            ],
        ),
        (
            "ExecStartPre failing under Restart=always: auto-restart before it was ever up",
            "STABLE_FOR=60s",
            vec![
                (0, vec![starting.clone()], E::Wait),
                (
                    1,
                    vec![st("activating", "auto-restart", "i1", 0)],
                    E::Back("auto-restart"),
                ),
            ],
        ),
        (
            "activating forever: waits (the deadline timer decides)",
            "STABLE_FOR=0",
            vec![
                (0, vec![starting.clone()], E::Wait),
                (300, vec![starting.clone()], E::Wait),
                (3000, vec![starting.clone()], E::Wait),
            ],
        ),
        (
            "STABLE_FOR=0 passes as soon as it is up",
            "STABLE_FOR=0",
            vec![
                (0, vec![starting.clone()], E::Wait),
                (1, vec![up("i1")], E::Pass),
            ],
        ),
        (
            "a failure is final: coming back up does not clear it",
            "STABLE_FOR=0",
            vec![
                (0, vec![st("failed", "failed", "i1", 0)], E::Back("failed")),
                (1, vec![up("i2")], E::Back("failed")),
            ],
        ),
        (
            "ON_FAILURE=report: the same crash is a failure without rollback",
            "STABLE_FOR=60s\nON_FAILURE=report",
            vec![
                (1, vec![up("i1")], E::WaitChecks),
                (
                    8,
                    vec![st("failed", "failed", "i1", 0)],
                    E::Report("failed"),
                ),
            ],
        ),
        (
            "reloading counts as up",
            "STABLE_FOR=2s",
            vec![
                (0, vec![up("i1")], E::WaitChecks),
                (1, vec![st("reloading", "reload", "i1", 0)], E::WaitChecks),
                (3, vec![up("i1")], E::Pass),
            ],
        ),
    ];
    for (name, conf, steps) in rows {
        run(
            name,
            &format!("CRITICAL_UNITS=nginx.service\n{conf}"),
            steps,
            |_| {},
        );
    }
}

#[test]
fn the_window_counts_from_the_last_unit_up() {
    let up = |inv| st("active", "running", inv, 0);
    let wait = st("activating", "start", "d1", 0);
    run(
        "two units",
        "CRITICAL_UNITS=nginx.service docker.service\nSTABLE_FOR=10s",
        &[
            (0, vec![up("n1"), wait.clone()], E::Wait),
            (9, vec![up("n1"), wait.clone()], E::Wait),
            (10, vec![up("n1"), up("d1")], E::WaitChecks),
            // 10 s after nginx came up, but only 5 s after docker
            (15, vec![up("n1"), up("d1")], E::WaitChecks),
            (20, vec![up("n1"), up("d1")], E::Pass),
        ],
        |_| {},
    );
    // no critical units: the window counts from the gate's start
    let cfg = policy(10);
    let f = |now| GateFacts {
        first_boot: true,
        started: 5 * S,
        now: now * S,
        ..GateFacts::default()
    };
    assert!(matches(&gate(&f(14), &cfg), E::WaitChecks));
    assert_eq!(gate(&f(15), &cfg), GateAction::Pass);
}

fn check(name: &str, required: bool, passed: Option<bool>) -> CheckTrack {
    CheckTrack {
        name: name.into(),
        required,
        runs: 1,
        passed,
        what: if passed == Some(false) { "exit 1" } else { "" }.into(),
        output: String::new(),
    }
}

#[test]
fn checks_failing_then_passing_and_wanted_ones() {
    let cfg = policy(0);
    let with = |checks: Vec<CheckTrack>| GateFacts {
        first_boot: true,
        checks,
        ..GateFacts::default()
    };
    for (checks, want) in [
        (vec![check("port", true, None)], E::WaitChecks),
        (vec![check("port", true, Some(false))], E::WaitChecks),
        (vec![check("port", true, Some(true))], E::Pass),
        // a wanted check is only recorded
        (
            vec![
                check("port", true, Some(true)),
                check("x.wanted", false, Some(false)),
            ],
            E::Pass,
        ),
        (vec![check("x.wanted", false, None)], E::Pass),
    ] {
        let got = gate(&with(checks.clone()), &cfg);
        assert!(matches(&got, want), "{checks:?}: {got:?}");
    }
    // still failing at the deadline: the reason names the check and its result
    let mut f = with(vec![check("port", true, Some(false))]);
    f.deadline_passed = true;
    assert!(
        matches(&gate(&f, &cfg), E::Back("check port (exit 1)")),
        "{:?}",
        gate(&f, &cfg)
    );
    // checks wait for the units: none is listed while a unit is still starting
    let mut f = with(vec![check("port", true, None)]);
    f.units = vec![UnitTrack::new("web.service")];
    let GateAction::Wait {
        waiting,
        run_checks,
        ..
    } = gate(&f, &cfg)
    else {
        panic!()
    };
    assert!(
        !run_checks && waiting.len() == 1 && waiting[0].starts_with("web.service"),
        "{waiting:?}"
    );
}

#[test]
fn config_errors_hold_a_first_boot_only() {
    let mut cfg = policy(0);
    let err = "/etc/abguard/abguard.conf:2: CRITICAL_UNITS=\"a,b\" is not a unit name".to_string();
    let mut f = GateFacts {
        first_boot: true,
        config_errors: vec![err.clone()],
        ..GateFacts::default()
    };
    let GateAction::Wait { waiting, .. } = gate(&f, &cfg) else {
        panic!("{:?}", gate(&f, &cfg))
    };
    assert!(waiting[0].contains(&err), "{waiting:?}");
    f.deadline_passed = true;
    assert!(matches(&gate(&f, &cfg), E::Back("abguard.conf:2")));
    cfg.rollback = false;
    assert!(matches(&gate(&f, &cfg), E::Report("abguard.conf:2")));
    // any other boot: nothing to hold (the caller reports the error)
    f.first_boot = false;
    assert_eq!(gate(&f, &cfg), GateAction::NotFirstBoot);
}

#[test]
fn hooks_verity_and_the_deadline() {
    let cfg = policy(0);
    let base = GateFacts {
        first_boot: true,
        ..GateFacts::default()
    };
    let f = GateFacts {
        failed_hook: Some("abguard-read-usr.service".into()),
        ..base.clone()
    };
    assert!(matches(
        &gate(&f, &cfg),
        E::Back("abguard-read-usr.service failed")
    ));
    let f = GateFacts {
        verity_problem: Some("dm-verity status C".into()),
        ..base.clone()
    };
    assert!(matches(&gate(&f, &cfg), E::Back("dm-verity")));
    // the deadline with nothing pending still fails: the timer fired before the verdict
    let f = GateFacts {
        deadline_passed: true,
        ..base.clone()
    };
    let GateAction::Fail { failure, .. } = gate(&f, &cfg) else {
        panic!()
    };
    assert_eq!(
        (failure.event(), failure.reason().as_str()),
        (Event::Deadline, "deadline passed")
    );
    // a pending unit is named in the deadline's reason
    let mut f = GateFacts {
        deadline_passed: true,
        units: vec![UnitTrack::new("nginx.service")],
        ..base
    };
    observe(&mut f.units[0], st("activating", "start", "i", 0), 0);
    assert!(matches(
        &gate(&f, &cfg),
        E::Back("nginx.service (activating/start, 0 restarts)")
    ));
}
