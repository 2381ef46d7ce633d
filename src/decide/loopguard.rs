//! The loop guard's rules: which recorded events make a build "held" (it failed its
//! first boot), whether a staged build is one of them, and which holds `allow` clears.
//! A build is its dm-verity root hash (the one GRUB passes, from the slot's kernel):
//! the hash covers every byte of /usr, os-release included, so the same hash is the
//! same build; VERSION_ID rides along for people and for `allow --version`.

use crate::types::event::{Event, Verdict};
use crate::types::history::Build;
use serde::Serialize;

/// One build the guard keeps from being staged again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Held {
    pub root_hash: String,
    pub version_id: Option<String>,
    /// The event that failed it (`gate-failed`, `deadline`, `initrd`, …).
    pub event: String,
    /// When it was held.
    pub since: String,
}

/// The build a recorded event says failed its first boot, when it can be named: gate
/// failure, deadline, the initrd's own verdict or emergency, or a fallback.
/// `ON_FAILURE=report` and a disk that says "not a first boot" hold nothing.
pub fn to_hold(r: Failure) -> Option<Build> {
    if r.first_boot_after_upgrade == Some(false) {
        return None;
    }
    let failed = match r.event {
        Event::Fallback => return r.failed.cloned().filter(|b| b.root_hash.is_some()),
        Event::GateFailed | Event::Deadline | Event::InitrdEmergency => {
            *r.verdict != Verdict::Report && *r.verdict != Verdict::Healthy
        }
        Event::Initrd | Event::Assess => *r.verdict == Verdict::Rollback,
        _ => false,
    };
    if !failed {
        return None;
    }
    r.booted.filter(|b| b.root_hash.is_some())
}

/// What a recorded event says, as far as the guard cares.
pub struct Failure<'a> {
    pub event: &'a Event,
    pub verdict: &'a Verdict,
    pub first_boot_after_upgrade: Option<bool>,
    /// A fallback's failed build.
    pub failed: Option<&'a Build>,
    /// The booted build, with its root hash when known.
    pub booted: Option<Build>,
}

/// The held list after holding `b` (once per root hash; the newest reason wins).
pub fn with(held: &[Held], b: &Build, event: &Event, time: &str) -> Vec<Held> {
    let Some(hash) = &b.root_hash else {
        return held.to_vec();
    };
    let mut out: Vec<Held> = held
        .iter()
        .filter(|h| !h.root_hash.eq_ignore_ascii_case(hash))
        .cloned()
        .collect();
    let event = match event {
        Event::Initrd | Event::Assess => "initrd".to_string(),
        e => e.as_str().to_string(),
    };
    out.push(Held {
        root_hash: hash.to_ascii_lowercase(),
        version_id: b.version_id.clone(),
        event,
        since: time.to_string(),
    });
    out
}

/// The hold matching a staged build's root hash, if any.
pub fn holding<'a>(held: &'a [Held], root_hash: &str) -> Option<&'a Held> {
    held.iter()
        .find(|h| h.root_hash.eq_ignore_ascii_case(root_hash))
}

/// Which holds `abguard allow` releases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Release {
    Version(String),
    RootHash(String),
    All,
}

/// (kept, released) for a release request.
pub fn release(held: &[Held], r: &Release) -> (Vec<Held>, Vec<Held>) {
    held.iter().cloned().partition(|h| match r {
        Release::All => false,
        Release::Version(v) => h.version_id.as_deref() != Some(v.as_str()),
        Release::RootHash(x) => !h.root_hash.eq_ignore_ascii_case(x),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::record::{Booted, Record};

    fn to_hold_rec(r: &Record) -> Option<Build> {
        to_hold(Failure {
            event: &r.event,
            verdict: &r.verdict,
            first_boot_after_upgrade: r.first_boot_after_upgrade,
            failed: r.failed.as_ref(),
            booted: r.booted_build(),
        })
    }

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn rec(event: Event, verdict: Verdict, first: Option<bool>, hash: Option<&str>) -> Record {
        let mut r = Record::new(event, verdict);
        r.booted = Some(Booted {
            partition: 4,
            label: "USR-B".into(),
            partuuid: "b".into(),
            source: "cmdline+sysfs".into(),
        });
        r.version_id = Some("2.0.0".into());
        r.root_hash = hash.map(str::to_string);
        r.first_boot_after_upgrade = first;
        r
    }

    #[test]
    fn which_events_hold_a_build() {
        use Event as E;
        use Verdict as V;
        let t = Some(true);
        let cases = [
            (E::GateFailed, V::Rollback, t, true),
            (E::Deadline, V::Rollback, t, true),
            (E::InitrdEmergency, V::Rollback, t, true),
            (E::Initrd, V::Rollback, t, true),
            (E::Assess, V::Rollback, t, true),
            // a gate failure that could not spend the slot still failed the build
            (E::GateFailed, V::NeedsHealthCheck, t, true),
            (E::GateFailed, V::Report, t, false),
            (E::GateFailed, V::Healthy, Some(false), false),
            (E::Initrd, V::NeedsHealthCheck, t, false),
            (E::Initrd, V::Healthy, Some(false), false),
            (E::GatePassed, V::Healthy, t, false),
            (E::VerifyFailed, V::Unstaged, None, false),
            (E::ManualRollback, V::Manual, None, false),
        ];
        for (i, (e, v, first, want)) in cases.into_iter().enumerate() {
            let r = rec(e.clone(), v.clone(), first, Some(H1));
            assert_eq!(to_hold_rec(&r).is_some(), want, "case {i}: {e} {v}");
        }
        // no root hash: nothing to recognise the build by, so nothing held
        assert!(to_hold_rec(&rec(E::GateFailed, V::Rollback, t, None)).is_none());
        // the hash dm-verity had stands in for the command line's
        let mut r = rec(E::Initrd, V::Rollback, t, None);
        r.verity = Some(crate::decide::verity::Verity {
            root_hash: Some(H2.into()),
            ..Default::default()
        });
        assert_eq!(to_hold_rec(&r).unwrap().root_hash.as_deref(), Some(H2));
    }

    #[test]
    fn held_once_per_hash_matched_by_hash_released_by_request() {
        let b = |h: &str, v: &str| Build {
            root_hash: Some(h.into()),
            version_id: Some(v.into()),
            ..Build::default()
        };
        let l = with(&[], &b(H1, "2.0.0"), &Event::GateFailed, "t1");
        let l = with(&l, &b(&H1.to_uppercase(), "2.0.0"), &Event::Fallback, "t2");
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].event.as_str(), l[0].since.as_str()),
            ("fallback", "t2")
        );
        let l = with(&l, &b(H2, "2.1.0"), &Event::Initrd, "t3");
        assert_eq!(l[1].event, "initrd");
        assert!(holding(&l, H1).is_some());
        assert!(holding(&l, &H2.to_uppercase()).is_some());
        assert!(holding(&l, &"3".repeat(64)).is_none());
        let (kept, gone) = release(&l, &Release::Version("2.0.0".into()));
        assert_eq!((kept.len(), gone[0].root_hash.as_str()), (1, H1));
        let (kept, gone) = release(&l, &Release::RootHash(H2.to_uppercase()));
        assert_eq!((kept[0].root_hash.as_str(), gone.len()), (H1, 1));
        let (kept, gone) = release(&l, &Release::All);
        assert_eq!((kept.len(), gone.len()), (0, 2));
        let (kept, gone) = release(&l, &Release::Version("9".into()));
        assert_eq!((kept.len(), gone.len()), (2, 0));
    }
}
