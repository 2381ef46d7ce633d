//! A `log` backend for the initrd: one `<pri>abguard[pid]: msg` record per event on
//! /dev/kmsg (the console and the journal both see it before journald runs), falling
//! back to stderr. The kernel rate-limits /dev/kmsg writers to 10 lines per burst, so
//! we cap ourselves and say so instead of losing lines silently.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The kernel refuses longer /dev/kmsg records (LOG_LINE_MAX minus the prefix).
pub const MAX_RECORD: usize = 976;
pub const MAX_LINES: usize = 10;
/// syslog facility LOG_USER, shifted as in `<PRI>`.
const LOG_USER: u8 = 1 << 3;

pub struct Logger {
    sink: Mutex<Sink>,
    lines: AtomicUsize,
    level: LevelFilter,
}

enum Sink {
    Kmsg(File),
    Stderr,
}

fn syslog_level(l: Level) -> u8 {
    match l {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Cut at a character boundary so the record stays valid UTF-8.
pub fn format_record(level: Level, pid: u32, msg: &str, kmsg: bool) -> String {
    let mut s = if kmsg {
        format!("<{}>abguard[{pid}]: ", LOG_USER | syslog_level(level))
    } else {
        "abguard: ".to_string()
    };
    for c in msg.chars().map(|c| if c == '\n' { ' ' } else { c }) {
        if s.len() + c.len_utf8() + 1 > MAX_RECORD {
            break;
        }
        s.push(c);
    }
    s.push('\n');
    s
}

impl Logger {
    /// `kmsg`: try /dev/kmsg first (the initrd); otherwise stderr.
    pub fn init(kmsg: bool, level: LevelFilter) {
        let sink = kmsg
            .then(|| OpenOptions::new().write(true).open("/dev/kmsg").ok())
            .flatten()
            .map_or(Sink::Stderr, Sink::Kmsg);
        let logger = Logger {
            sink: Mutex::new(sink),
            lines: AtomicUsize::new(0),
            level,
        };
        if log::set_boxed_logger(Box::new(logger)).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.lines.fetch_add(1, Ordering::Relaxed);
        let is_kmsg = matches!(*sink, Sink::Kmsg(_));
        if is_kmsg && n >= MAX_LINES {
            return;
        }
        let msg = if is_kmsg && n == MAX_LINES - 1 {
            "further messages suppressed (see /run/abguard/boot.json)".to_string()
        } else {
            record.args().to_string()
        };
        let line = format_record(record.level(), std::process::id(), &msg, is_kmsg);
        let failed = match &mut *sink {
            Sink::Kmsg(f) => f.write_all(line.as_bytes()).is_err(),
            Sink::Stderr => std::io::stderr().write_all(line.as_bytes()).is_err(),
        };
        if failed && is_kmsg {
            *sink = Sink::Stderr;
            let _ = std::io::stderr()
                .write_all(format_record(record.level(), 0, &msg, false).as_bytes());
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_format() {
        assert_eq!(
            format_record(Level::Info, 42, "hello", true),
            "<14>abguard[42]: hello\n"
        );
        assert_eq!(
            format_record(Level::Error, 1, "x\ny", true),
            "<11>abguard[1]: x y\n"
        );
        assert_eq!(format_record(Level::Warn, 1, "w", false), "abguard: w\n");
    }

    #[test]
    fn long_records_are_cut_on_a_char_boundary() {
        let msg = "é".repeat(2000);
        let r = format_record(Level::Info, 123456, &msg, true);
        assert!(r.len() <= MAX_RECORD);
        assert!(r.ends_with('\n'));
    }
}
