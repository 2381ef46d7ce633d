//! The EnvironmentFile syntax, as systemd reads it (`load_env_file()`), for the subset a
//! configuration needs: `KEY=VALUE` a line; `#` or `;` starts a comment line; a value
//! is unquoted (surrounding blanks dropped, `\x` is `x`, a `\` at the end of the line
//! joins the next line), or wholly in single quotes (literal) or double quotes (`\"`,
//! `\\`, `\$`, `` \` `` escaped, a `\` at the end of a line joins the next). Anything
//! else — a quote left open at the end of a line (systemd would read on; abguard asks
//! for the backslash), text after the closing quote — is refused with the line number,
//! never guessed at. Invalid UTF-8 is that line's error only.

/// One logical line: the number of its first physical line, and its text or why not.
pub struct Line {
    pub number: usize,
    pub text: Result<(String, String), String>,
}

/// The logical lines of `bytes` that set something (comments and blanks dropped).
pub fn lines(bytes: &[u8]) -> Vec<Line> {
    let mut out = Vec::new();
    let phys: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let mut i = 0;
    while i < phys.len() {
        let number = i + 1;
        let mut raw: Vec<u8> = phys[i].to_vec();
        i += 1;
        // a line that ends in an odd number of backslashes continues on the next
        // (the backslash and newline stay: the value's own rules drop them)
        while ends_with_escape(&raw) && i < phys.len() {
            raw.push(b'\n');
            raw.extend_from_slice(phys[i]);
            i += 1;
        }
        let text = match std::str::from_utf8(&raw) {
            Ok(t) => t,
            Err(e) => {
                out.push(Line {
                    number,
                    text: Err(format!("not UTF-8 (byte {})", e.valid_up_to() + 1)),
                });
                continue;
            }
        };
        let t = text.trim_start();
        if t.trim().is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        out.push(Line {
            number,
            text: split(t),
        });
    }
    out
}

fn ends_with_escape(raw: &[u8]) -> bool {
    let n = raw.iter().rev().take_while(|&&b| b == b'\\').count();
    n % 2 == 1
}

fn split(line: &str) -> Result<(String, String), String> {
    let Some((k, v)) = line.split_once('=') else {
        return Err(format!("expected KEY=VALUE, got {:?}", line.trim()));
    };
    Ok((k.trim().to_string(), value(v)?))
}

/// A value after `=`, its quoting resolved.
fn value(v: &str) -> Result<String, String> {
    let v = v.trim_start_matches([' ', '\t']);
    let (q, rest) = match v.chars().next() {
        Some(q @ ('\'' | '"')) => (q, &v[1..]),
        _ => return Ok(unquoted(v)),
    };
    let mut out = String::new();
    let mut it = rest.chars();
    loop {
        match it.next() {
            None => return Err(format!("the {q} quote is never closed (quotes must match)")),
            Some(c) if c == q => break,
            Some('\\') if q == '"' => match it.next() {
                Some('\n') => {}
                Some(c @ ('"' | '\\' | '$' | '`')) => out.push(c),
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None => return Err("the \" quote is never closed (quotes must match)".into()),
            },
            Some(c) => out.push(c),
        }
    }
    let after = it.as_str().trim();
    if !after.is_empty() {
        return Err(format!(
            "text after the closing {q} quote: {after:?} (quote the whole value)"
        ));
    }
    Ok(out)
}

fn unquoted(v: &str) -> String {
    let mut out = String::new();
    let mut it = v.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('\n') | None => {}
                Some(c) => out.push(c),
            },
            c => out.push(c),
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<(String, String), String> {
        let mut l = lines(text.as_bytes());
        assert_eq!(l.len(), 1, "{text:?}");
        l.remove(0).text
    }

    #[test]
    fn systemd_environment_file_rules() {
        let ok = |t: &str, v: &str| assert_eq!(one(t).unwrap().1, v, "{t:?}");
        ok("A=plain", "plain");
        ok("A = spaced  ", "spaced");
        ok("A=two words", "two words");
        ok("A=\"1h 30min\"", "1h 30min");
        ok("A='a \\ b'", "a \\ b");
        ok("A=\"say \\\"x\\\"\"", "say \"x\"");
        ok("A=a\\ b", "a b");
        ok(
            "A=nginx.service \\\n  sshd.service",
            "nginx.service   sshd.service",
        );
        ok("A=\"one\\\ntwo\"", "onetwo");
        // a quote open at the end of a line (no backslash) is refused, not joined
        for bad in [
            "A=\"open",
            "A='open",
            "A=\"x\" y",
            "A='x'y",
            "no equals",
            "A=\"multi",
        ] {
            assert!(one(bad).is_err(), "{bad:?}");
        }
        // the line of a continued value is its first
        let l = lines(b"# c\nA=x \\\ny\nB=z\n");
        assert_eq!(
            l.iter().map(|l| l.number).collect::<Vec<_>>(),
            [2, 4],
            "continuation"
        );
    }

    #[test]
    fn invalid_utf8_costs_its_line_only() {
        let l = lines(b"A=1\nB=\xff\xfe\nC=3\n");
        assert_eq!(l.len(), 3);
        assert!(l[0].text.is_ok() && l[2].text.is_ok());
        assert!(l[1].text.as_ref().unwrap_err().contains("not UTF-8"));
        assert_eq!(l[1].number, 2);
    }
}
