//! Exit codes, as the README's table lists them, and the one error type verbs return:
//! a failure carries its code, so nothing downcasts and no verb spells a number.

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
    /// Refused: the change would break the A/B rules; nothing was written.
    Refused = 3,
    /// Verification failed: `verify` or `read-usr` found the slot corrupted.
    VerifyFailed = 4,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
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

    /// The README's exit-code table lists exactly these codes.
    #[test]
    fn codes_are_the_readmes() {
        let readme = include_str!("../README.md");
        let table = &readme[readme.find("### Exit codes").expect("the table")..];
        let rows: Vec<i32> = table
            .lines()
            .skip_while(|l| !l.starts_with("|---"))
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.split('|').nth(1)?.trim().parse().ok())
            .collect();
        let ours: Vec<i32> = [
            ExitCode::Ok,
            ExitCode::Error,
            ExitCode::Usage,
            ExitCode::Refused,
            ExitCode::VerifyFailed,
        ]
        .iter()
        .map(|c| c.code())
        .collect();
        assert_eq!(rows, ours);
        let refused: Failure = Refusal::NothingBootable.into();
        assert_eq!(refused.code(), ExitCode::Refused);
        let error: Failure = anyhow::anyhow!("x").into();
        assert_eq!(error.code(), ExitCode::Error);
    }
}
