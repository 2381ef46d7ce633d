//! The dm-verity judgement: what the kernel's status and table lines for /usr say, and
//! whether that is a reason not to trust the booted slot. Pure: the lines come from
//! the DM ioctl ([`crate::probe::dm`]) or from `dmsetup`-style test files.

use serde::Serialize;

/// One target line: `start length type params`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    pub start: u64,
    pub length: u64,
    pub target_type: String,
    pub params: String,
}

/// Parse a line as `dmsetup status NAME` / `dmsetup table NAME` print it.
pub fn parse_line(line: &str) -> Option<Target> {
    let mut it = line.trim().splitn(4, ' ');
    Some(Target {
        start: it.next()?.parse().ok()?,
        length: it.next()?.parse().ok()?,
        target_type: it.next()?.to_string(),
        params: it.next().unwrap_or("").trim().to_string(),
    })
}

/// What the kernel says about /usr's dm-verity device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verity {
    pub target: Option<String>,
    /// First character of the verity status: "V" verified so far, "C" corruption seen.
    pub status: Option<String>,
    pub root_hash: Option<String>,
    pub expected_hash: Option<String>,
    /// Why the check could not be made (no dm, no `usr` device, ioctl failed, ...).
    pub unavailable: Option<String>,
}

/// Field 8 of a verity table: `version data_dev hash_dev data_bs hash_bs
/// data_blocks hash_start alg ROOT_DIGEST salt [opts]`.
pub fn verity_root_hash(params: &str) -> Option<String> {
    params
        .split_whitespace()
        .nth(8)
        .map(str::to_ascii_lowercase)
}

impl Verity {
    pub fn from_targets(status: &[Target], table: &[Target], expected: Option<String>) -> Verity {
        let target = status.first().map(|t| t.target_type.clone());
        let mut v = Verity {
            target: target.clone(),
            expected_hash: expected,
            ..Verity::default()
        };
        if status.len() != 1 {
            v.unavailable = Some(format!(
                "usr has {} targets, expected one verity target",
                status.len()
            ));
            return v;
        }
        if target.as_deref() == Some("verity") {
            // only the first character: newer kernels append " -" or an FEC count
            v.status = status[0].params.chars().next().map(String::from);
            v.root_hash = table.first().and_then(|t| verity_root_hash(&t.params));
        }
        v
    }

    /// A reason this /usr must not be trusted, if the kernel gave one.
    pub fn problem(&self) -> Option<String> {
        if self.unavailable.is_some() {
            return None;
        }
        match self.target.as_deref() {
            Some("verity") => {}
            Some(other) => {
                return Some(format!(
                    "usr is a {other:?} device-mapper target, not verity"
                ))
            }
            None => return None,
        }
        match self.status.as_deref() {
            Some("V") => {}
            Some("C") => return Some("dm-verity reports corruption (status C)".into()),
            other => return Some(format!("unknown dm-verity status {other:?}")),
        }
        match (&self.root_hash, &self.expected_hash) {
            (Some(have), Some(want)) if have != want => Some(format!(
                "dm-verity root hash {have} differs from verity.usrhash={want}"
            )),
            (None, Some(_)) => Some("dm-verity table carries no root hash".into()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_table() {
        let hash = "ab".repeat(32);
        let other = "cd".repeat(32);
        let table = |h: &str| {
            parse_line(&format!(
                "0 8 verity 1 254:3 254:3 4096 4096 1 2 sha256 {h} -"
            ))
            .unwrap()
        };
        let status = |s: &str| parse_line(&format!("0 8 verity {s}")).unwrap();
        let cases: Vec<(Target, Target, Option<String>, bool)> = vec![
            (status("V"), table(&hash), Some(hash.clone()), true),
            (status("V -"), table(&hash), Some(hash.clone()), true),
            (status("V"), table(&hash), None, true),
            (status("C"), table(&hash), Some(hash.clone()), false),
            (status("C 12"), table(&hash), Some(hash.clone()), false),
            (status("V"), table(&other), Some(hash.clone()), false),
            (status("X"), table(&hash), Some(hash.clone()), false),
            (
                parse_line("0 8 linear 254:3 0").unwrap(),
                parse_line("0 8 linear 254:3 0").unwrap(),
                None,
                false,
            ),
        ];
        for (s, t, want, ok) in cases {
            let v = Verity::from_targets(std::slice::from_ref(&s), &[t], want);
            assert_eq!(v.problem().is_none(), ok, "{s:?} → {v:?}");
        }
        let v = Verity::from_targets(&[], &[], None);
        assert!(v.unavailable.is_some() && v.problem().is_none());
    }

    #[test]
    fn dmsetup_lines() {
        assert_eq!(
            parse_line("0 2097152 verity V"),
            Some(Target {
                start: 0,
                length: 2097152,
                target_type: "verity".into(),
                params: "V".into()
            })
        );
        assert_eq!(parse_line("garbage"), None);
        assert_eq!(parse_line(""), None);
    }
}
