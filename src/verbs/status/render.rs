//! `status` as text and as JSON: the answers first, then the details.

use super::answers::{self, states};
use super::{Facts, GateNow};
use crate::act::{metrics, record};
use crate::verbs::print_json;
use serde_json::json;

/// The answers, in the order text prints them (JSON carries the same lines).
fn summary(f: &Facts) -> Vec<String> {
    let mut v = vec![answers::running(f), answers::next_reboot(f)];
    v.extend(answers::gate(f));
    if let Some(e) = answers::last_failure(f) {
        v.extend(answers::why(e, &f.history));
    }
    v.extend(f.degraded.iter().map(|d| format!("DEGRADED: {d}")));
    v
}

/// The gate's state word on this boot.
fn gate_word(g: &GateNow) -> &'static str {
    match g {
        GateNow::None => "none",
        GateNow::Pending(_) => "pending",
        GateNow::Decided(e) => match e.event {
            record::Event::ManualPassGate => "passed-by-hand",
            record::Event::GatePassed => "passed",
            _ if e.verdict == Some(record::Verdict::Report) => "failed-reported",
            _ => "failed",
        },
        GateNow::Unrecorded { healthy: true } => "passed",
        GateNow::Unrecorded { healthy: false } => "decided",
    }
}

/// The initrd's verdict, marked superseded once the gate decided.
fn assessment(f: &Facts) -> Option<String> {
    let l = f.last.as_ref()?;
    let mut t = format!(
        "initrd assessment: {}",
        l.verdict.as_ref().map_or("?", |v| v.as_str())
    );
    if !l.reasons.is_empty() {
        t.push_str(&format!(" ({})", l.reasons.join("; ")));
    }
    if let GateNow::Decided(_) | GateNow::Unrecorded { .. } = f.gate {
        t.push_str(&format!(
            " — superseded: the health gate {}",
            gate_word(&f.gate).replace('-', " ")
        ));
    }
    Some(t)
}

pub(super) fn text(f: &Facts, history: usize) {
    for l in summary(f) {
        println!("{l}");
    }
    println!("disk: {} (GPT read from the {} copy)", f.disk, f.table.used);
    let st = states(f);
    let version_w = f
        .versions
        .iter()
        .flatten()
        .map(String::len)
        .max()
        .unwrap_or(1);
    for (i, s) in f.slots.iter().enumerate() {
        let mut tags = Vec::new();
        if Some(i) == f.next {
            tags.push("next boot");
        }
        if Some(i) == f.booted {
            tags.push("booted");
        }
        println!(
            "  {:<6} partition {:<2} {:<version_w$}  {:<14} {}{}",
            s.label,
            s.partition,
            f.versions[i].as_deref().unwrap_or("?"),
            st[i].word(),
            s.attrs,
            if tags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", tags.join(", "))
            }
        );
    }
    if let Some(t) = assessment(f) {
        println!("{t}");
    }
    if f.source == Some(metrics::Source::Late) {
        println!("{}", metrics::LATE);
    }
    for h in &f.held {
        println!("held: {}", crate::act::held::short(h));
    }
    let hist = &f.history[f.history.len().saturating_sub(history)..];
    print_history(hist);
}

pub(super) fn json(f: &Facts, history: usize) {
    let st = states(f);
    let slots: Vec<serde_json::Value> = f
        .slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["state"] = st[i].key().into();
            v["version_id"] = f.versions[i].clone().into();
            v
        })
        .collect();
    let mut problems = f.table.problems.clone();
    if f.slots.is_empty() {
        problems.push(crate::decide::ab::Refusal::NoUsrPartition.to_string());
    }
    let mut gate = match &f.gate {
        GateNow::Pending(s) => s.as_ref().map(|g| g.to_value()),
        GateNow::Decided(e) => e.raw.get("gate").cloned(),
        _ => None,
    };
    if let Some(g) = gate.as_mut().filter(|g| g.is_object()) {
        g["state"] = gate_word(&f.gate).into();
    }
    let failure = answers::last_failure(f);
    let hist = &f.history[f.history.len().saturating_sub(history)..];
    print_json(&json!({
        "summary": summary(f),
        "running": f.booted.map(|i| json!({
            "label": f.slots[i].label,
            "partition": f.slots[i].partition,
            "version_id": f.versions[i],
            "state": st[i].key(),
        })),
        "next_reboot": {
            "partition": f.next.map(|i| f.slots[i].partition),
            "label": f.next.map(|i| &f.slots[i].label),
            "why": answers::next_reboot(f),
        },
        "health_gate": {
            "state": gate_word(&f.gate),
            "text": answers::gate(f),
        },
        "last_failure": failure.map(|e| json!({
            "event": e.event,
            "time": e.time,
            "reasons": e.reasons,
            "failed_units": e.failed_units,
            "stage": e.stage,
            "took_s": e.took_s,
            "actions": e.actions.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "text": answers::why(e, &f.history),
        })),
        "degraded": f.degraded,
        "disabled": f.disabled,
        "disk": f.disk,
        "table": f.table.used,
        "problems": problems,
        "slots": slots,
        "next_boot": f.next.map(|i| f.slots[i].partition),
        "booted": f.booted.map(|i| f.slots[i].partition),
        "booted_notes": f.booted_notes,
        "last_assessment": f.last,
        "assessment_superseded": matches!(f.gate, GateNow::Decided(_) | GateNow::Unrecorded { .. }),
        "assessment_source": f.source.map(|s| s.as_str()),
        "held": f.held,
        "gate": gate,
        "history": hist.iter().map(|e| &e.raw).collect::<Vec<_>>(),
    }));
}

/// The newest history entries, in aligned columns; a failure with what is known about
/// it and what was done about it.
fn print_history(hist: &[record::Entry]) {
    if hist.is_empty() {
        return;
    }
    // a refused restage names the refused build, not the running one
    let version = |h: &record::Entry| -> String {
        let v = match (&h.event, &h.failed) {
            (record::Event::RestageRefused, Some(b)) => b.version_id.as_deref(),
            _ => h.version_id.as_deref(),
        };
        v.unwrap_or("-").to_string()
    };
    let w_event = hist
        .iter()
        .map(|h| h.event.as_str().len())
        .max()
        .unwrap_or(0);
    let w_version = hist.iter().map(|h| version(h).len()).max().unwrap_or(0);
    println!("history:");
    for h in hist {
        println!(
            "  {} {:<w_event$} {:<6} {:<w_version$} {}",
            h.time.as_deref().unwrap_or("?"),
            h.event.as_str(),
            h.booted.as_ref().map_or("-", |b| b.label.as_str()),
            version(h),
            h.verdict.as_ref().map_or("?", |v| v.as_str()),
        );
        let explain = h.event.is_first_boot_failure()
            || h.event == record::Event::ManualPassGate
            || matches!(
                h.event,
                record::Event::VerifyFailed
                    | record::Event::ReadUsrFailed
                    | record::Event::RestageRefused
                    | record::Event::Disabled
            )
            || (h.event.is_assessment() && h.verdict == Some(record::Verdict::Rollback));
        if explain {
            let actions = h.actions.iter().map(ToString::to_string);
            for line in h.reasons.iter().cloned().chain(actions) {
                println!("      {line}");
            }
        }
    }
}
