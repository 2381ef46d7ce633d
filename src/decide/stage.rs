//! Which stage a failed first boot reached and why it is believed to have ended, from
//! the breadcrumbs the next boot finds: pstore, the watchdog's bootstatus, the attempt's
//! initrd record and the gate's breadcrumb on ROOT. Pure; table-tested.

use crate::types::attempt::{Crumb, Reached};
use crate::types::history::Entry;

/// The stage a failed attempt reached and why it is believed to have ended: the words
/// the `fallback` record, `status`, the history and the metrics' `stage` label carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Tries spent, no trace of the kernel: GRUB could not load the slot's kernel.
    Bootloader,
    /// No initrd record for the attempt: stage 0 (Flatcar's minimal initrd), the
    /// kernel's early boot, or GRUB when the kernel file cannot be checked.
    Stage0OrKernel,
    /// The initrd assessed the attempt and nothing later was seen.
    Initrd,
    /// pstore holds the kernel's panic or oops.
    KernelPanic,
    /// The watchdog reset the machine, or the gate was watching and no verdict came.
    Hang,
    /// The attempt got past the initrd; neither a panic nor the watchdog ended it.
    PowerLossOrReset,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Bootloader,
        Stage::Stage0OrKernel,
        Stage::Initrd,
        Stage::KernelPanic,
        Stage::Hang,
        Stage::PowerLossOrReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Bootloader => "bootloader",
            Stage::Stage0OrKernel => "stage 0 or kernel",
            Stage::Initrd => "initrd",
            Stage::KernelPanic => "kernel panic",
            Stage::Hang => "hang",
            Stage::PowerLossOrReset => "power loss or reset",
        }
    }
}

/// Everything the next boot knows about an attempt that reached no verdict.
#[derive(Clone, Debug, Default)]
pub struct Clues<'a> {
    /// The slot GRUB fell back from.
    pub partuuid: &'a str,
    /// The attempt's own initrd record, when it got so far.
    pub attempt: Option<&'a Entry>,
    /// The breadcrumb on ROOT (any attempt's: matched here by slot and boot ID).
    pub crumb: Option<&'a Crumb>,
    /// pstore's line about a panic or oops.
    pub kernel_said: Option<&'a str>,
    /// The watchdog driver's bootstatus: Some(true) it reset the machine.
    pub watchdog_reset: Option<bool>,
    /// The slot's kernel on EFI-SYSTEM: Some(false) missing or not a kernel; None when
    /// it cannot be looked at (EFI-SYSTEM is not mounted in the initrd).
    pub kernel_present: Option<bool>,
    /// The wall-clock second this boot's kernel started.
    pub now_boot_unix: Option<u64>,
}

/// The stage, the reason in words, and the seconds from the attempt's kernel start to
/// this boot's (its run plus the reset, the firmware and GRUB) when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    pub stage: Stage,
    pub why: String,
    pub took_s: Option<u64>,
}

/// The breadcrumb says `partuuid` was staged and nothing of its attempt followed: a
/// spent slot with no history is then this attempt's, not one older than the history.
pub fn staged(crumb: Option<&Crumb>, partuuid: &str) -> bool {
    crumb.is_some_and(|c| c.reached == Reached::Staged && c.partuuid == partuuid)
}

/// Name the stage: a panic in pstore, then the watchdog's word, then how far the
/// breadcrumbs say the attempt got.
pub fn classify(c: &Clues) -> Classified {
    let crumb = c.crumb.filter(|k| {
        k.partuuid == c.partuuid
            && c.attempt
                .is_some_and(|a| a.boot_id.as_deref() == Some(&k.boot_id))
    });
    let took_s = crumb.and_then(|k| c.now_boot_unix?.checked_sub(k.boot_unix));
    let (stage, why) = if let Some(m) = c.kernel_said {
        (Stage::KernelPanic, format!("the kernel panicked: {m}"))
    } else if c.watchdog_reset == Some(true) {
        let armed = crumb.map_or(String::new(), |k| format!(" ({})", k.watchdog));
        (
            Stage::Hang,
            format!("the watchdog reset the machine{armed}: the kernel or PID 1 stopped"),
        )
    } else if c.attempt.is_none() {
        match c.kernel_present {
            Some(false) => (Stage::Bootloader, "no initrd record and the slot's kernel is missing or unreadable: GRUB could not load it".into()),
            _ => (Stage::Stage0OrKernel, "no initrd record: it stopped in GRUB, stage 0 or the kernel before abguard's initrd ran".into()),
        }
    } else {
        let seen = crumb.filter(|k| k.reached == Reached::Gate);
        let dog = c.watchdog_reset == Some(false);
        match (seen, dog) {
            (Some(k), false) => (Stage::Hang, format!(
                "the gate was watching (last observation {}s after boot, waiting for: {}) and no verdict or panic followed",
                k.last_seen_unix.unwrap_or(k.boot_unix).saturating_sub(k.boot_unix),
                if k.waiting.is_empty() { "-".into() } else { k.waiting.join("; ") }
            )),
            (Some(_), true) => (Stage::PowerLossOrReset, "the gate was watching; no panic, and the watchdog did not fire".into()),
            (None, true) => (Stage::PowerLossOrReset, "past the initrd's assessment; no panic, and the watchdog did not fire".into()),
            (None, false) => (Stage::Initrd, "the initrd assessed it; nothing later was seen and no watchdog reports why it ended".into()),
        }
    };
    Classified { stage, why, took_s }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (case, initrd record, crumb, pstore, watchdog reset, kernel present, stage, took)
    type StageCase<'a> = (
        &'static str,
        bool,
        Option<&'a Crumb>,
        Option<&'a str>,
        Option<bool>,
        Option<bool>,
        Stage,
        Option<u64>,
    );

    #[test]
    fn which_stage_a_fallback_names() {
        let b = "b-uuid";
        let attempt = Entry {
            boot_id: Some("boot-b".into()),
            ..Entry::default()
        };
        let crumb = |reached, boot_id: &str| Crumb {
            reached,
            partuuid: b.into(),
            boot_id: boot_id.into(),
            boot_unix: 1000,
            watchdog: "watchdog0 (i6300ESB timer) for 120s".into(),
            gate_started_unix: Some(1030),
            last_seen_unix: Some(1040),
            waiting: vec!["web.service".into()],
        };
        let initrd = crumb(Reached::Initrd, "boot-b");
        let gate = crumb(Reached::Gate, "boot-b");
        let stale = crumb(Reached::Gate, "an-older-boot");
        let panic = "dmesg-ramoops-0: Kernel panic - not syncing: sysrq triggered crash";
        // (case, initrd record, crumb, pstore, watchdog reset, kernel present, stage, took)
        #[rustfmt::skip]
        let cases: Vec<StageCase> = vec![
            ("kernel missing from EFI-SYSTEM", false, None, None, Some(false), Some(false), Stage::Bootloader, None),
            ("no record, kernel not visible (initrd)", false, None, None, None, None, Stage::Stage0OrKernel, None),
            ("no record, kernel there: stage 0", false, None, None, Some(false), Some(true), Stage::Stage0OrKernel, None),
            ("verity panic in stage 0 / initrd", false, None, Some(panic), None, None, Stage::KernelPanic, None),
            ("panic after switch-root", true, Some(&gate), Some(panic), Some(false), None, Stage::KernelPanic, Some(90)),
            ("watchdog fired in the gate", true, Some(&gate), None, Some(true), None, Stage::Hang, Some(90)),
            ("watchdog fired before the gate", true, Some(&initrd), None, Some(true), None, Stage::Hang, Some(90)),
            ("gate watching, no watchdog to ask", true, Some(&gate), None, None, None, Stage::Hang, Some(90)),
            ("gate watching, watchdog says not it", true, Some(&gate), None, Some(false), None, Stage::PowerLossOrReset, Some(90)),
            ("cut after the initrd, watchdog says not it", true, Some(&initrd), None, Some(false), None, Stage::PowerLossOrReset, Some(90)),
            ("initrd record only, no watchdog", true, Some(&initrd), None, None, None, Stage::Initrd, Some(90)),
            ("a stale crumb of another boot is not this attempt's", true, Some(&stale), None, None, None, Stage::Initrd, None),
        ];
        for (name, rec, crumb, said, dog, kernel, stage, took) in cases {
            let got = classify(&Clues {
                partuuid: b,
                attempt: rec.then_some(&attempt),
                crumb,
                kernel_said: said,
                watchdog_reset: dog,
                kernel_present: kernel,
                now_boot_unix: Some(1090),
            });
            assert_eq!(
                (got.stage, got.took_s),
                (stage, took),
                "{name}: {}",
                got.why
            );
        }
        let words: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            [
                "bootloader",
                "stage 0 or kernel",
                "initrd",
                "kernel panic",
                "hang",
                "power loss or reset"
            ]
        );
    }
}
