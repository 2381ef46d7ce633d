//! The breadcrumb of a first boot after an upgrade (`/var/lib/abguard/attempt.json` on
//! ROOT): how far the attempt got and what the gate saw last, so the next boot can name
//! the stage a fallback died in. Plain data; the file is `act::attempt`'s.

use serde_json::Value;

/// The furthest stage abguard saw the attempt reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reached {
    /// Staged (the loop guard saw /run/reboot-required): the next boot tries it. The
    /// history holds no line for that, so this is what tells a fallback with no initrd
    /// record from a slot spent before the history began.
    Staged,
    /// The initrd assessed it (needs-health-check) and armed the watchdog.
    Initrd,
    /// The booted system's gate started watching.
    Gate,
}

/// One attempt's breadcrumb.
#[derive(Clone, Debug, PartialEq)]
pub struct Crumb {
    pub reached: Reached,
    /// The slot on its first boot.
    pub partuuid: String,
    pub boot_id: String,
    /// Wall-clock second the attempt's kernel started (now − uptime when written).
    pub boot_unix: u64,
    /// What the initrd did with the watchdog (armed, missing, failed).
    pub watchdog: String,
    /// The gate's start and its last observation (wall-clock seconds).
    pub gate_started_unix: Option<u64>,
    pub last_seen_unix: Option<u64>,
    /// What the gate was waiting for at its last observation.
    pub waiting: Vec<String>,
}

impl Crumb {
    /// The file's JSON, written by hand: a derived serializer costs the static binary
    /// kilobytes for one small file.
    pub fn to_json(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let n = |v: Option<u64>| v.map_or("null".into(), |v| v.to_string());
        let waiting: Vec<String> = self.waiting.iter().map(|w| q(w)).collect();
        format!(
            "{{\"reached\":\"{}\",\"partuuid\":{},\"boot_id\":{},\"boot_unix\":{},\"watchdog\":{},\
             \"gate_started_unix\":{},\"last_seen_unix\":{},\"waiting\":[{}]}}\n",
            match self.reached {
                Reached::Staged => "staged",
                Reached::Initrd => "initrd",
                Reached::Gate => "gate",
            },
            q(&self.partuuid),
            q(&self.boot_id),
            self.boot_unix,
            q(&self.watchdog),
            n(self.gate_started_unix),
            n(self.last_seen_unix),
            waiting.join(",")
        )
    }

    /// Read back by hand (no derived deserializers in the static binary); None when a
    /// field this version needs is missing.
    pub fn from_value(v: &Value) -> Option<Crumb> {
        let text = |k: &str| v.get(k)?.as_str().map(str::to_string);
        let num = |k: &str| v.get(k)?.as_u64();
        Some(Crumb {
            reached: match v.get("reached")?.as_str()? {
                "gate" => Reached::Gate,
                "staged" => Reached::Staged,
                _ => Reached::Initrd,
            },
            partuuid: text("partuuid")?,
            boot_id: text("boot_id")?,
            boot_unix: num("boot_unix")?,
            watchdog: text("watchdog").unwrap_or_default(),
            gate_started_unix: num("gate_started_unix"),
            last_seen_unix: num("last_seen_unix"),
            waiting: (v
                .get("waiting")
                .and_then(Value::as_array)
                .into_iter()
                .flatten())
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect(),
        })
    }
}
