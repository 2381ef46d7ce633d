//! Exit codes: one table ([`TABLE`]) with the same meaning in every verb, printed by
//! `--help` ([`HELP`]), the man pages and docs/operator.md; and the one error type verbs
//! return: a failure carries its code, so nothing downcasts and no verb spells a number.

use crate::decide::ab::Refusal;

/// The process's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Done (for `initrd`: a verdict was reached and written).
    Ok = 0,
    /// An error: unreadable disk, no valid GPT, unwritable /run, … (the message names what).
    Error = 1,
    /// A usage error (clap's own, or a value a verb's checks rejected).
    Usage = 2,
    /// Refused: the change would break the A/B rules, or does not apply now; nothing
    /// was written.
    Refused = 3,
    /// Verification failed: `verify` or `read-usr` found the slot corrupted.
    VerifyFailed = 4,
    /// Working but degraded: `status` answered, and found something to look at (the
    /// backup GPT in use, no USR partition, no bootable slot, configuration errors).
    Degraded = 5,
}

/// Every code and its meaning, the same in every verb.
pub const TABLE: &[(ExitCode, &str)] = &[
    (ExitCode::Ok, "done"),
    (
        ExitCode::Error,
        "error (the message names the path or device)",
    ),
    (ExitCode::Usage, "usage error"),
    (
        ExitCode::Refused,
        "refused: against the A/B rules or not applicable now; nothing written",
    ),
    (
        ExitCode::VerifyFailed,
        "verification failed (verify, read-usr)",
    ),
    (
        ExitCode::Degraded,
        "working but degraded (status: see its warnings)",
    ),
];

/// [`TABLE`] as `--help` prints it (a literal: clap's `after_help` wants one; a test
/// holds it to the table).
pub const HELP: &str = "Exit status (every verb):
  0  done
  1  error (the message names the path or device)
  2  usage error
  3  refused: against the A/B rules or not applicable now; nothing written
  4  verification failed (verify, read-usr)
  5  working but degraded (status: see its warnings)";

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The codes a verb can end with: a subset of [`TABLE`], never another meaning.
/// tests/exit_codes.rs runs every verb against it; the man pages list these.
pub fn codes(verb: &str) -> &'static [ExitCode] {
    use ExitCode::*;
    match verb {
        "status" => &[Ok, Error, Usage, Degraded],
        "next" | "stage" | "mark-good" | "rollback" | "pass-gate" | "fail-gate" => {
            &[Ok, Error, Usage, Refused]
        }
        // the internal verbs that may reboot refuse a terminal without --yes
        "initrd" | "assess" | "gate-pass" | "gate-fail" | "emergency" => {
            &[Ok, Error, Usage, Refused]
        }
        "verify" => &[Ok, Error, Usage, Refused, VerifyFailed],
        "read-usr" => &[Ok, Error, Usage, VerifyFailed],
        // its input is the command line and local files named on it: both usage
        "butane" => &[Ok, Usage],
        _ => &[Ok, Error, Usage],
    }
}

/// Why a verb stopped, and so which exit code it ends with.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1.
    Error(anyhow::Error),
    /// Exit 3: a [`Refusal`], with the context it was refused in.
    Refused(anyhow::Error),
    /// Exit 2: the message for clap to show with the verb's usage.
    Usage { verb: &'static str, message: String },
}

impl Failure {
    pub fn code(&self) -> ExitCode {
        match self {
            Failure::Error(_) => ExitCode::Error,
            Failure::Refused(_) => ExitCode::Refused,
            Failure::Usage { .. } => ExitCode::Usage,
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Error(e)
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        Failure::Refused(r.into())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Error(e) | Failure::Refused(e) => write!(f, "{e:#}"),
            Failure::Usage { message, .. } => f.write_str(message),
        }
    }
}

/// What a verb returns.
pub type VerbResult = Result<ExitCode, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help`'s text is the table, row for row, and the codes run 0, 1, 2, …
    #[test]
    fn help_is_the_table() {
        let rows: Vec<String> = TABLE
            .iter()
            .map(|(c, what)| format!("  {}  {what}", c.code()))
            .collect();
        assert_eq!(HELP.lines().skip(1).collect::<Vec<_>>(), rows);
        for (i, (c, _)) in TABLE.iter().enumerate() {
            assert_eq!(c.code(), i as i32);
        }
        let refused: Failure = Refusal::NothingBootable.into();
        assert_eq!(refused.code(), ExitCode::Refused);
        let error: Failure = anyhow::anyhow!("x").into();
        assert_eq!(error.code(), ExitCode::Error);
    }
}
