//! Prometheus text exposition of the A/B state, for `abguard status --prometheus` and
//! the node_exporter textfile collector: the slots, the booted slot and version, the
//! last verdict, running totals of first boots, failures, fallbacks and rollbacks (by
//! version for the newest few), the loop guard's held builds, the gate's state, config
//! errors and where this boot was assessed.

use crate::act::history::Counters;
use crate::act::record::Verdict;
use crate::decide::loopguard::Held;
use crate::disk::gpt::GptCopy;
use crate::types::Slot;
use std::fmt::Write as _;

/// What the status verb knows, ready to render.
pub struct Snapshot<'a> {
    pub table: GptCopy,
    pub problems: usize,
    pub slots: &'a [Slot],
    pub next_boot: Option<usize>,
    pub booted: Option<usize>,
    pub version_id: Option<&'a str>,
    pub last_verdict: Option<&'a Verdict>,
    pub last_assessment_time: Option<u64>,
    pub counters: &'a Counters,
    /// The health gate: pending on this boot, its deadline (Unix seconds), and the
    /// configuration lines skipped on this boot.
    pub gate_pending: bool,
    pub gate_deadline: Option<u64>,
    pub config_errors: usize,
    /// Health checks the gate refused to run (not root's own: docs/security.md).
    pub checks_refused: usize,
    /// This boot's assessment: by the initrd module, or late by the booted system.
    pub source: Option<Source>,
    pub held: &'a [Held],
    /// `/run/abguard/config-error` exists: the configuration was not applied.
    pub config_error: bool,
}

/// Who assessed this boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Initrd,
    /// `abguard-assess.service`: the initrd module did not run.
    Late,
}

/// How status and the metrics' help describe a boot `abguard-assess.service` assessed.
pub const LATE: &str = "assessed late: the initrd module did not run";

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Initrd => "initrd",
            Source::Late => "late",
        }
    }
}

pub const VERDICTS: [Verdict; 6] = [
    Verdict::Healthy,
    Verdict::NeedsHealthCheck,
    Verdict::Rollback,
    Verdict::Mismatch,
    Verdict::Indeterminate,
    Verdict::Report,
];

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    let slot_labels = |x: &Slot| {
        format!(
            "label=\"{}\",partition=\"{}\",partuuid=\"{}\"",
            escape(&x.label),
            x.partition,
            x.partuuid
        )
    };
    let per_slot = |o: &mut String, name: &str, help: &str, value: &dyn Fn(usize, &Slot) -> u64| {
        family(o, name, "gauge", help);
        for (i, x) in s.slots.iter().enumerate() {
            let _ = writeln!(o, "{name}{{{}}} {}", slot_labels(x), value(i, x));
        }
    };
    per_slot(
        &mut o,
        "abguard_slot_priority",
        "GPT priority of the USR slot (0-15).",
        &|_, x| u64::from(x.attrs.priority),
    );
    per_slot(
        &mut o,
        "abguard_slot_tries",
        "Boot tries left on the USR slot (0-15).",
        &|_, x| u64::from(x.attrs.tries),
    );
    per_slot(
        &mut o,
        "abguard_slot_successful",
        "1 if the USR slot is marked successful.",
        &|_, x| u64::from(x.attrs.successful),
    );
    per_slot(
        &mut o,
        "abguard_slot_next_boot",
        "1 for the slot GRUB boots next.",
        &|i, _| u64::from(s.next_boot == Some(i)),
    );
    per_slot(
        &mut o,
        "abguard_slot_booted",
        "1 for the slot this system booted from.",
        &|i, _| u64::from(s.booted == Some(i)),
    );

    family(
        &mut o,
        "abguard_booted_info",
        "gauge",
        "The booted slot and its os-release VERSION_ID.",
    );
    if let Some(b) = s.booted.and_then(|i| s.slots.get(i)) {
        let _ = writeln!(
            o,
            "abguard_booted_info{{{},version_id=\"{}\"}} 1",
            slot_labels(b),
            escape(s.version_id.unwrap_or(""))
        );
    }
    render_state(&mut o, s);
    render_counters(&mut o, s);
    render_lifecycle(&mut o, s);
    o
}

/// The last verdict, the GPT's health, the pending gate and the configuration errors.
fn render_state(o: &mut String, s: &Snapshot) {
    family(
        o,
        "abguard_last_verdict",
        "gauge",
        "1 for the verdict of the last recorded assessment or gate.",
    );
    for v in VERDICTS {
        let _ = writeln!(
            o,
            "abguard_last_verdict{{verdict=\"{v}\"}} {}",
            u8::from(s.last_verdict == Some(&v))
        );
    }
    if let Some(t) = s.last_assessment_time {
        family(
            o,
            "abguard_last_assessment_timestamp_seconds",
            "gauge",
            "When the last boot assessment was written.",
        );
        let _ = writeln!(o, "abguard_last_assessment_timestamp_seconds {t}");
    }
    family(
        o,
        "abguard_gpt_backup_in_use",
        "gauge",
        "1 when the primary GPT is damaged and the backup was read.",
    );
    let _ = writeln!(
        o,
        "abguard_gpt_backup_in_use {}",
        u8::from(s.table == GptCopy::Backup)
    );
    family(
        o,
        "abguard_gpt_problems",
        "gauge",
        "Defects found in the GPT copies.",
    );
    let _ = writeln!(o, "abguard_gpt_problems {}", s.problems);
    family(
        o,
        "abguard_gate_pending",
        "gauge",
        "1 while a first boot after an upgrade waits for its health gate.",
    );
    let _ = writeln!(o, "abguard_gate_pending {}", u8::from(s.gate_pending));
    if let Some(t) = s.gate_deadline.filter(|_| s.gate_pending) {
        family(
            o,
            "abguard_gate_deadline_timestamp_seconds",
            "gauge",
            "When the pending gate's deadline rolls the upgrade back.",
        );
        let _ = writeln!(o, "abguard_gate_deadline_timestamp_seconds {t}");
    }
    family(
        o,
        "abguard_config_errors",
        "gauge",
        "Configuration lines skipped on this boot (file:line in the history).",
    );
    let _ = writeln!(o, "abguard_config_errors {}", s.config_errors);
    family(
        o,
        "abguard_checks_refused",
        "gauge",
        "Health checks refused on this boot: not owned by root, or writable by others (the reasons are in status and the history).",
    );
    let _ = writeln!(o, "abguard_checks_refused {}", s.checks_refused);
}

/// The totals the history lines carry.
fn render_counters(o: &mut String, s: &Snapshot) {
    let c = s.counters;
    for (name, help, v) in [
        ("abguard_boots_total", "Boots assessed.", c.boots),
        ("abguard_first_boots_total", "First boots after an upgrade.", c.first_boots),
        ("abguard_gate_passed_total", "First boots after an upgrade that passed the health gate.", c.gate_passed),
        ("abguard_failed_first_boots_total", "First boots after an upgrade that failed (dm-verity, a critical unit, the deadline, the initrd, or a fallback with no verdict).", c.failed_first_boots),
        ("abguard_rollbacks_total", "Returns to the other build: slots spent so that GRUB falls back, fallbacks GRUB made on its own, manual rollbacks.", c.rollbacks),
        ("abguard_restages_refused_total", "Staged builds the loop guard un-staged because they failed their first boot before.", c.restages_refused),
    ] {
        family(o, name, "counter", help);
        let _ = writeln!(o, "{name} {v}");
    }
    render_fallbacks(o, c);
}

/// Fallbacks by the stage the attempt reached; `unknown`: recorded before stages were.
fn render_fallbacks(o: &mut String, c: &Counters) {
    let name = "abguard_fallbacks_total";
    family(o, name, "counter", "First boots GRUB fell back from with no verdict reached, by the stage the attempt reached (docs/failure-budgets.md).");
    let mut named = 0;
    for s in crate::decide::stage::Stage::ALL {
        let n = c.fallback_stages.get(s.as_str()).copied().unwrap_or(0);
        named += n;
        let _ = writeln!(o, "{name}{{stage=\"{}\"}} {n}", s.as_str());
    }
    if c.fallbacks > named {
        let _ = writeln!(o, "{name}{{stage=\"unknown\"}} {}", c.fallbacks - named);
    }
}

/// Failures by version, held builds, the gate, config errors, the assessment's source.
fn render_lifecycle(o: &mut String, s: &Snapshot) {
    let name = "abguard_version_failed_first_boots_total";
    family(
        o,
        name,
        "counter",
        "Failed first boots of each of the newest versions that failed, by cause (fallback, gate-failed, deadline, initrd, initrd-emergency).",
    );
    for v in &s.counters.versions {
        for (cause, n) in &v.failures {
            let _ = writeln!(
                o,
                "{name}{{version_id=\"{}\",cause=\"{}\"}} {n}",
                escape(&v.version_id),
                escape(cause)
            );
        }
    }
    family(
        o,
        "abguard_held_builds",
        "gauge",
        "Builds the loop guard keeps from being staged again (abguard allow releases them).",
    );
    let _ = writeln!(o, "abguard_held_builds {}", s.held.len());
    family(
        o,
        "abguard_held_build_info",
        "gauge",
        "1 for each held build, labelled with its version, root hash and the event that failed it.",
    );
    for h in s.held {
        let _ = writeln!(
            o,
            "abguard_held_build_info{{version_id=\"{}\",root_hash=\"{}\",event=\"{}\"}} 1",
            escape(h.version_id.as_deref().unwrap_or("")),
            escape(&h.root_hash),
            escape(&h.event)
        );
    }
    family(
        o,
        "abguard_config_error",
        "gauge",
        "1 when the health-gate configuration could not be applied (/run/abguard/config-error).",
    );
    let _ = writeln!(o, "abguard_config_error {}", u8::from(s.config_error));
    family(
        o,
        "abguard_assessment_source",
        "gauge",
        "1 for who assessed this boot: initrd, or late (abguard-assess.service: the initrd module did not run).",
    );
    if let Some(src) = s.source {
        for x in [Source::Initrd, Source::Late] {
            let _ = writeln!(
                o,
                "abguard_assessment_source{{source=\"{}\"}} {}",
                x.as_str(),
                u8::from(x == src)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::ab::slots_from;

    #[test]
    fn renders_families_once_with_escaped_labels() {
        let mut slots = slots_from(&[(1, 0, true), (2, 0, false)]);
        slots[0].label = "we\"ird\\label".into();
        let c = Counters {
            boots: 3,
            rollbacks: 1,
            ..Counters::default()
        };
        let text = render(&Snapshot {
            table: GptCopy::Primary,
            problems: 0,
            slots: &slots,
            next_boot: Some(0),
            booted: Some(1),
            version_id: Some("2.0.0"),
            last_verdict: Some(&Verdict::NeedsHealthCheck),
            last_assessment_time: Some(1_795_689_296),
            counters: &c,
            gate_pending: true,
            gate_deadline: Some(1_795_689_896),
            config_errors: 2,
            checks_refused: 1,
            source: Some(Source::Late),
            held: &[Held {
                root_hash: "ab".repeat(32),
                version_id: Some("2.0.0".into()),
                event: "fallback".into(),
                since: "t".into(),
            }],
            config_error: true,
        });
        assert!(text.contains("abguard_gate_pending 1\n"));
        assert!(text.contains("abguard_gate_deadline_timestamp_seconds 1795689896\n"));
        assert!(text.contains("abguard_config_errors 2\n"));
        assert!(text.contains("abguard_checks_refused 1\n"));
        assert!(text.contains("abguard_assessment_source{source=\"late\"} 1\n"));
        assert!(text.contains("abguard_held_builds 1\n"));
        assert!(text.contains("abguard_config_error 1\n"));
        assert_eq!(text.matches("# TYPE abguard_gate_pending ").count(), 1);
        assert!(text.contains("abguard_slot_priority{label=\"we\\\"ird\\\\label\",partition=\"3\""));
        assert!(text.contains("abguard_last_verdict{verdict=\"needs-health-check\"} 1"));
        assert!(text.contains("abguard_booted_info{label=\"USR-B\",partition=\"4\""));
        assert!(text.contains("abguard_rollbacks_total 1\n"));
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let names: std::collections::HashSet<_> =
            text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        assert_eq!(types, names.len(), "each family declared once");
    }
}
