//! `/run/abguard/gate.json`, the health gate's snapshot, as one type: built from the
//! gate's facts and verdict ([`GateState::of`]), written ([`GateState::to_json`]) by the
//! watcher while it waits and once it decides, read back ([`GateState::parse`]) by
//! `gate-fail` (the checks only the watcher ran), `status` and the metrics, and carried
//! in the verdict's record (`gate`). Also the generator's configuration errors
//! (`config-error`, one a line).
//!
//! Written and read by hand, as the history is: a derived serializer or `json!` costs
//! the static binary kilobytes.

use crate::act::flags::{CONFIG_ERROR, GATE_JSON, STATE_DIR};
use crate::act::record::rfc3339;
use crate::decide::gate::{CheckTrack, GateAction, GateFacts, WINDOW_WAIT};
use anyhow::{anyhow, Context, Result};
use serde_json::Value;
use std::path::Path;

/// Where the gate is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Passed,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Passed => "passed",
            Phase::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Phase> {
        [Phase::Pending, Phase::Passed, Phase::Failed]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// One critical unit as the gate last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitLine {
    pub unit: String,
    /// "active/running"; None before systemd answered.
    pub state: Option<String>,
    pub restarts: Option<u32>,
    pub invocation: Option<String>,
    /// When it came up (RFC 3339).
    pub up_since: Option<String>,
    /// Its first definitive failure.
    pub failure: Option<String>,
}

/// The gate's snapshot. Times are RFC 3339 (UTC); `deadline_unix` is the deadline in
/// Unix seconds for the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateState {
    pub phase: Phase,
    pub since: String,
    /// What the gate still waits for (the stable-for window's countdown is not listed:
    /// `window_ends` says when it ends).
    pub waiting: Vec<String>,
    pub window_ends: Option<String>,
    pub deadline: String,
    pub deadline_unix: u64,
    pub units: Vec<UnitLine>,
    pub checks: Vec<CheckTrack>,
    pub config_errors: Vec<String>,
    /// When this snapshot was taken.
    pub updated: String,
}

/// The two clocks at the moment of the snapshot: the gate's facts are CLOCK_MONOTONIC
/// µs, the file shows wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub mono_us: u64,
    pub unix: u64,
}

impl Clock {
    /// A monotonic instant as wall-clock seconds since the epoch.
    fn unix_of(self, mono: u64) -> u64 {
        (self.unix as i64 + (mono as i64 - self.mono_us as i64) / 1_000_000).max(0) as u64
    }

    fn time_of(self, mono: u64) -> String {
        rfc3339(self.unix_of(mono))
    }
}

impl GateState {
    /// The snapshot of facts `f` and verdict `a`, with the deadline at `deadline_at`
    /// (CLOCK_MONOTONIC µs), taken at `now`.
    pub fn of(f: &GateFacts, a: &GateAction, deadline_at: u64, now: Clock) -> GateState {
        let (phase, waiting, window) = match a {
            GateAction::Wait {
                waiting,
                window_ends,
                ..
            } => (Phase::Pending, waiting.clone(), *window_ends),
            GateAction::Fail { failure, .. } => (Phase::Failed, vec![failure.reason()], None),
            _ => (Phase::Passed, Vec::new(), None),
        };
        let waiting = waiting
            .into_iter()
            .filter(|w| window.is_none() || !w.starts_with(WINDOW_WAIT))
            .collect();
        let units = f
            .units
            .iter()
            .map(|t| {
                let st = t.now.as_ref();
                UnitLine {
                    unit: t.unit.clone(),
                    state: st.map(|s| format!("{}/{}", s.active.as_str(), s.sub)),
                    restarts: st.map(|s| s.restarts),
                    invocation: st.map(|s| s.invocation.clone()),
                    up_since: t.up_since.map(|m| now.time_of(m)),
                    failure: t.broke.clone(),
                }
            })
            .collect();
        GateState {
            phase,
            since: now.time_of(f.started),
            waiting,
            window_ends: window.map(|m| now.time_of(m)),
            deadline: now.time_of(deadline_at),
            deadline_unix: now.unix_of(deadline_at),
            units,
            checks: f.checks.clone(),
            config_errors: f.config_errors.clone(),
            updated: rfc3339(now.unix),
        }
    }

    /// True when `other` says the same but for when it was taken: the watcher rewrites
    /// the file only when what the gate waits for changes.
    pub fn same_but_for_the_countdown(&self, other: &GateState) -> bool {
        GateState {
            updated: other.updated.clone(),
            ..self.clone()
        } == *other
    }

    pub fn to_json(&self) -> String {
        let mut o = Obj::new();
        o.str("state", self.phase.as_str());
        o.str("since", &self.since);
        o.raw("waiting", &strs(&self.waiting));
        o.raw("window_ends", &opt(self.window_ends.as_deref().map(q)));
        o.str("deadline", &self.deadline);
        o.raw("deadline_unix", &self.deadline_unix.to_string());
        let units = self.units.iter().map(|u| {
            let mut o = Obj::new();
            o.str("unit", &u.unit);
            o.raw("state", &opt(u.state.as_deref().map(q)));
            o.raw("restarts", &opt(u.restarts));
            o.raw("invocation", &opt(u.invocation.as_deref().map(q)));
            o.raw("up_since", &opt(u.up_since.as_deref().map(q)));
            o.raw("failure", &opt(u.failure.as_deref().map(q)));
            o.end()
        });
        o.raw("units", &list(units));
        let checks = self.checks.iter().map(|c| {
            let mut o = Obj::new();
            o.str("name", &c.name);
            o.raw("required", &c.required.to_string());
            o.raw("runs", &c.runs.to_string());
            o.raw("passed", &opt(c.passed));
            o.str("result", &c.what);
            o.str("output", &c.output);
            o.end()
        });
        o.raw("checks", &list(checks));
        o.raw("config_errors", &strs(&self.config_errors));
        o.str("updated", &self.updated);
        o.end()
    }

    /// The snapshot as a JSON value, for the record's `gate` field.
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(self.to_json().as_bytes()).unwrap_or(Value::Null)
    }

    /// Read a snapshot back; a missing key or a value of the wrong type is an error
    /// naming it, never a default.
    pub fn parse(bytes: &[u8]) -> Result<GateState> {
        let v: Value = serde_json::from_slice(bytes).context("not JSON")?;
        let mut units = Vec::new();
        for u in array(&v, "units")? {
            units.push(UnitLine {
                unit: text(u, "unit")?,
                state: maybe_text(u, "state")?,
                restarts: maybe(u, "restarts", Value::as_u64)?.map(|n| n as u32),
                invocation: maybe_text(u, "invocation")?,
                up_since: maybe_text(u, "up_since")?,
                failure: maybe_text(u, "failure")?,
            });
        }
        let mut checks = Vec::new();
        for c in array(&v, "checks")? {
            checks.push(CheckTrack {
                name: text(c, "name")?,
                required: field(c, "required", Value::as_bool)?,
                runs: field(c, "runs", Value::as_u64)? as u32,
                passed: maybe(c, "passed", Value::as_bool)?,
                what: text(c, "result")?,
                output: text(c, "output")?,
            });
        }
        let phase = text(&v, "state")?;
        Ok(GateState {
            phase: Phase::parse(&phase).ok_or_else(|| anyhow!("unknown state {phase:?}"))?,
            since: text(&v, "since")?,
            waiting: texts(&v, "waiting")?,
            window_ends: maybe_text(&v, "window_ends")?,
            deadline: text(&v, "deadline")?,
            deadline_unix: field(&v, "deadline_unix", Value::as_u64)?,
            units,
            checks,
            config_errors: texts(&v, "config_errors")?,
            updated: text(&v, "updated")?,
        })
    }

    /// `abguard status`'s line for a pending gate at `now_unix`: what it waits for, the
    /// window, the deadline and the time left.
    pub fn explain(&self, now_unix: u64) -> Option<String> {
        if self.phase != Phase::Pending {
            return None;
        }
        let mut t = format!("health gate pending since {}: waiting for ", self.since);
        match (&self.window_ends, self.waiting.is_empty()) {
            (Some(w), true) => t.push_str(&format!("the stable-for window, which ends at {w}")),
            (w, _) => {
                t.push_str(&self.waiting.join("; "));
                if let Some(w) = w {
                    t.push_str(&format!("; stable-for window ends at {w}"));
                }
            }
        }
        let left = self.deadline_unix as i64 - now_unix as i64;
        let left = match left {
            l if l <= 0 => "passed".to_string(),
            l if l >= 120 => format!("in {} min", l / 60),
            l => format!("in {l} s"),
        };
        t.push_str(&format!("; deadline at {} ({left})", self.deadline));
        Some(t)
    }
}

/// The gate's snapshot under `run_dir`: None when there is none, an error naming the
/// file when it cannot be read as one.
pub fn read(run_dir: &Path) -> Option<Result<GateState>> {
    let p = run_dir.join(STATE_DIR).join(GATE_JSON);
    let b = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(anyhow!(e).context(format!("reading {}", p.display())))),
    };
    Some(GateState::parse(&b).with_context(|| format!("reading {}", p.display())))
}

/// How many configuration lines the generator skipped on this boot.
pub fn config_errors(run_dir: &Path) -> usize {
    std::fs::read_to_string(run_dir.join(STATE_DIR).join(CONFIG_ERROR))
        .map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count())
}

/// A JSON object written key by key.
struct Obj(String);

impl Obj {
    fn new() -> Obj {
        Obj(String::from("{"))
    }
    fn raw(&mut self, k: &str, v: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push_str(&q(k));
        self.0.push(':');
        self.0.push_str(v);
    }
    fn str(&mut self, k: &str, v: &str) {
        self.raw(k, &q(v));
    }
    fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(","))
}

fn strs(v: &[String]) -> String {
    list(v.iter().map(|s| q(s)))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

fn get<'a>(v: &'a Value, k: &str) -> Result<&'a Value> {
    v.get(k).ok_or_else(|| anyhow!("no {k:?}"))
}

fn field<'a, T>(v: &'a Value, k: &str, as_t: fn(&'a Value) -> Option<T>) -> Result<T> {
    as_t(get(v, k)?).ok_or_else(|| anyhow!("{k:?} has the wrong type"))
}

/// A key that must be present and may be null.
fn maybe<'a, T>(v: &'a Value, k: &str, as_t: fn(&'a Value) -> Option<T>) -> Result<Option<T>> {
    match get(v, k)? {
        Value::Null => Ok(None),
        _ => field(v, k, as_t).map(Some),
    }
}

fn text(v: &Value, k: &str) -> Result<String> {
    field(v, k, Value::as_str).map(String::from)
}

fn maybe_text(v: &Value, k: &str) -> Result<Option<String>> {
    Ok(maybe(v, k, Value::as_str)?.map(String::from))
}

fn array<'a>(v: &'a Value, k: &str) -> Result<&'a Vec<Value>> {
    field(v, k, Value::as_array)
}

fn texts(v: &Value, k: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for x in array(v, k)? {
        out.push(
            x.as_str()
                .ok_or_else(|| anyhow!("{k:?} holds a non-string"))?
                .into(),
        );
    }
    Ok(out)
}

#[cfg(test)]
#[path = "gate_state_tests.rs"]
mod tests;
