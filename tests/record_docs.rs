//! The record table of docs/operator.md names exactly the events and verdicts the code writes: the
//! values in the `event` and `verdict` rows are the enums' spellings, no more, no fewer.

use abguard::types::event::{Event, Verdict};
use std::collections::BTreeSet;

/// The back-quoted words of docs/operator.md's record-table row for `field`, outside
/// parentheses (which name where a value appears, not values).
fn row(field: &str) -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operator.md")).unwrap();
    let prefix = format!("| `{field}` |");
    let line = readme
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("docs/operator.md has no {prefix} row"));
    let mut depth = 0;
    let outside: String = line[prefix.len()..]
        .chars()
        .filter(|&c| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => return depth == 0,
            }
            false
        })
        .collect();
    outside
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn spelled<T>(all: &[T], s: impl Fn(&T) -> &str) -> BTreeSet<String> {
    all.iter().map(|x| s(x).to_string()).collect()
}

#[test]
fn readme_event_row_is_the_event_enum() {
    assert_eq!(row("event"), spelled(Event::ALL, Event::as_str));
}

#[test]
fn readme_verdict_row_is_the_verdict_enum() {
    assert_eq!(row("verdict"), spelled(Verdict::ALL, Verdict::as_str));
}

#[test]
fn serialized_values_are_the_spellings() {
    for e in Event::ALL {
        assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
    }
    for v in Verdict::ALL {
        assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
    }
}
