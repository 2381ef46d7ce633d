//! os-release(5) parsing: just enough to name the version that booted.

/// Value of `key` in os-release text: shell-like `KEY=value`, optional single or double
/// quotes, backslash escapes inside double quotes, comments and junk lines skipped.
pub fn get(text: &str, key: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        if let Some(v) = unquote(v.trim()) {
            found = Some(v);
        }
    }
    found.filter(|v| !v.is_empty())
}

fn unquote(v: &str) -> Option<String> {
    let bytes = v.as_bytes();
    match bytes.first() {
        Some(b'"') => {
            let inner = v.strip_prefix('"')?.strip_suffix('"')?;
            let mut out = String::new();
            let mut esc = false;
            for c in inner.chars() {
                if esc {
                    out.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else {
                    out.push(c);
                }
            }
            Some(out)
        }
        Some(b'\'') => Some(v.strip_prefix('\'')?.strip_suffix('\'')?.to_string()),
        _ if v
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'') =>
        {
            None
        }
        _ => Some(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::get;

    #[test]
    fn table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("VERSION_ID=4230.0.0\n", Some("4230.0.0")),
            (
                "NAME=\"Flatcar\"\nVERSION_ID=\"4230.2.1\"\n",
                Some("4230.2.1"),
            ),
            ("VERSION_ID='1.0'\n", Some("1.0")),
            ("# VERSION_ID=9\nVERSION_ID=2\n", Some("2")),
            ("VERSION_ID=1\nVERSION_ID=2\n", Some("2")),
            ("VERSION_ID=\"unterminated\n", None),
            ("VERSION_ID=two words\n", None),
            ("VERSION_ID=\n", None),
            ("", None),
            ("\0\u{1}garbage=\u{fffd}\nVERSION_ID", None),
            ("VERSION_ID=\"a\\\"b\"", Some("a\"b")),
            ("  VERSION_ID = 3.1 ", Some("3.1")),
        ];
        for (text, want) in cases {
            assert_eq!(get(text, "VERSION_ID").as_deref(), *want, "{text:?}");
        }
    }
}
