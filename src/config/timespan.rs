//! systemd time spans (systemd.time(7)): "90", "10min", "1h 30min", "1h30min", "1.5h",
//! "2 h". The grammar and the unit values follow systemd's `parse_time()` so a value
//! abguard accepts is one the timer accepts, with the same meaning.

use serde::{Serialize, Serializer};
use std::fmt;

/// A time span in microseconds, systemd's own resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub u64);

const SEC: u64 = 1_000_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;

/// systemd's unit table, in its order: the first prefix that matches wins ("ms" before
/// "m"; "M" is a month, "m" a minute). One string and an index into [`MULT`], not a
/// table of (&str, u64): the static binary has a size budget.
const NAMES: &str = "seconds second sec s minutes minute min months month M msec ms m \
hours hour hr h days day d weeks week w years year y usec us \u{3bc}s \u{b5}s";
const UNIT: &[u8; 30] = b"000011122233144445556667778888";
/// s, min, month (30.44 d), ms, h, d, w, year (365.25 d), us
const MULT: [u64; 9] = [
    SEC,
    MIN,
    2_629_800 * SEC,
    1000,
    HOUR,
    DAY,
    7 * DAY,
    31_557_600 * SEC,
    1,
];

/// Bounds of DEADLINE: under a minute no real service proves itself; over a day the
/// node runs unproven for longer than any boot should take.
pub const DEADLINE_MIN: Span = Span(MIN);
pub const DEADLINE_MAX: Span = Span(DAY);

fn ws(s: &str) -> &str {
    s.trim_start_matches([' ', '\t', '\n', '\r'])
}

/// Parse like systemd's `parse_sec()`: components, each a number (decimal fraction
/// allowed) and an optional unit (seconds when absent), joined with or without
/// whitespace. "infinity" is refused: no abguard span may be unbounded.
pub fn parse(text: &str) -> Result<Span, &'static str> {
    const RANGE: &str = "out of range";
    let mut p = ws(text);
    if p.is_empty() {
        return Err("empty");
    }
    let mut total: u64 = 0;
    while !p.is_empty() {
        // strtoll: an optional '+', then digits that must fit a long long
        if p.starts_with('-') {
            return Err("negative");
        }
        let num = p.strip_prefix('+').unwrap_or(p);
        let int_len = num.bytes().take_while(u8::is_ascii_digit).count();
        let (int, rest) = num.split_at(int_len);
        let mut whole: u64 = 0;
        for d in int.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u64::from(d - b'0')))
                .filter(|w| *w <= i64::MAX as u64)
                .ok_or(RANGE)?;
        }
        let point = rest.starts_with('.');
        let (frac, rest) = match rest.strip_prefix('.') {
            Some(r) => r.split_at(r.bytes().take_while(u8::is_ascii_digit).count()),
            None if int.is_empty() => return Err("expected a number"),
            None => ("", rest),
        };
        let after = ws(rest);
        let unit = NAMES
            .split(' ')
            .zip(UNIT)
            .find(|(u, _)| after.starts_with(u));
        let (mult, next) = match unit {
            Some((u, i)) => (MULT[usize::from(i - b'0')], &after[u.len()..]),
            // "12x" is wrong; "12 x" fails on "x" as the next component, as in systemd
            None if after.len() == rest.len() && !rest.is_empty() => return Err("unknown unit"),
            None => (SEC, after),
        };
        let k = whole.checked_mul(mult).ok_or(RANGE)?;
        total = total.checked_add(k).ok_or(RANGE)?;
        if point {
            // "3." and "3.sec" are refused
            if frac.is_empty() {
                return Err("no digits after the point");
            }
            let mut m = mult / 10;
            for d in frac.bytes() {
                total = total.checked_add(u64::from(d - b'0') * m).ok_or(RANGE)?;
                m /= 10;
            }
        }
        if total == u64::MAX {
            return Err(RANGE);
        }
        p = ws(next);
    }
    Ok(Span(total))
}

/// A DEADLINE value: a span within [`DEADLINE_MIN`]..=[`DEADLINE_MAX`].
pub fn deadline(text: &str) -> Result<Span, String> {
    let s = parse(text)
        .map_err(|e| format!("{text:?} is not a systemd time span ({e}; e.g. 10min, 1h 30min)"))?;
    if s < DEADLINE_MIN || s > DEADLINE_MAX {
        return Err(format!("{text:?} is {s}, outside 1min to 24h"));
    }
    Ok(s)
}

impl Span {
    /// The exact value in one unit, for unit files: "5400s", or "1500us" when not whole
    /// seconds.
    pub fn systemd(self) -> String {
        if self.0 % SEC == 0 {
            format!("{}s", self.0 / SEC)
        } else {
            format!("{}us", self.0)
        }
    }
}

/// Like systemd's format_timespan(): "1h 30min", "10min", "1min 30s"; parses back to
/// the same value.
impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0");
        }
        let mut left = self.0;
        let mut sep = "";
        for (name, m) in [
            ("d", DAY),
            ("h", HOUR),
            ("min", MIN),
            ("s", SEC),
            ("ms", 1000),
            ("us", 1),
        ] {
            if left >= m {
                write!(f, "{sep}{}{name}", left / m)?;
                left %= m;
                sep = " ";
            }
        }
        Ok(())
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_systemd() {
        assert_eq!(NAMES.split(' ').count(), UNIT.len());
        // microseconds from `systemd-analyze timespan` (systemd 252)
        for (text, usec) in [
            ("1h 30min", 5_400_000_000),
            ("1h30min", 5_400_000_000),
            ("1.5h", 5_400_000_000),
            ("2 h", 7_200_000_000),
            ("1d", 86_400_000_000),
            ("90", 90_000_000),
            ("1M", 2_629_800_000_000),
            ("1y", 31_557_600_000_000),
            ("1w", 604_800_000_000),
            (".5s", 500_000),
            ("+5s", 5_000_000),
            ("1 2", 3_000_000),
            ("0", 0),
            ("5 \u{3bc}s", 5),
            ("1.123456789s", 1_123_456),
            ("3 min 2sec", 182_000_000),
            ("1s.5", 1_500_000),
            ("10min", 600_000_000),
            ("2m", 120_000_000),
            ("2ms", 2000),
            (" 3 hours  ", 10_800_000_000),
            ("1minute 1second", 61_000_000),
            ("1hr", 3_600_000_000),
            ("1 .5", 1_500_000),
            ("5400.5s", 5_400_500_000),
            ("1.8446744073709551615us", 1),
            ("9223372036854775807us", 9_223_372_036_854_775_807),
            (
                "9223372036854775806us 9223372036854775806us",
                18_446_744_073_709_551_612,
            ),
        ] {
            assert_eq!(parse(text), Ok(Span(usec)), "{text:?}");
            assert_eq!(parse(&Span(usec).to_string()), Ok(Span(usec)), "{text:?}");
            // one number must fit systemd's long long (so bounded spans always do)
            if usec <= i64::MAX as u64 {
                assert_eq!(parse(&Span(usec).systemd()), Ok(Span(usec)), "{text:?}");
            }
        }
        // systemd: EINVAL or ERANGE for each
        for bad in [
            "",
            "  ",
            "-1s",
            "1.h",
            "3.",
            "12x",
            "99999999999999999999999s",
            "18446744073709551614us",
            "1h foo",
            "1 parsec",
            "5 x",
            "infinity",
            "9223372036854775806us 9223372036854775806us 9223372036854775806us",
            "3.sec",
            "+-1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn deadline_bounds() {
        assert_eq!(deadline("1min"), Ok(DEADLINE_MIN));
        assert_eq!(deadline("24h"), Ok(DEADLINE_MAX));
        assert_eq!(deadline("1.5h"), Ok(Span(5_400_000_000)));
        for (bad, why) in [
            ("0", "is 0, outside 1min to 24h"),
            ("59s", "outside"),
            ("24h 1us", "outside"),
            ("1w", "outside"),
            ("99999999999999999999999s", "out of range"),
            ("soon", "not a systemd time span"),
        ] {
            let e = deadline(bad).unwrap_err();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }
}
