//! The kernel command line, as far as it names the /usr partition and its root hash.
//!
//! GRUB writes `mount.usr=/dev/mapper/usr verity.usr=PARTUUID=<uuid> … verity.usrhash=<hex>`
//! on verity builds and `mount.usr=PARTUUID=<uuid>` otherwise; the legacy `usr=` form
//! is still honoured by bootengine. As with the kernel and systemd, the last occurrence
//! of a key wins; duplicates are reported because they usually mean an OEM append.

use serde::Serialize;
use std::path::PathBuf;

/// How the command line names the /usr partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum UsrRef {
    PartUuid(String),
    PartLabel(String),
    Device(PathBuf),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cmdline {
    /// The key the partition came from and how it is named, or why it could not be read.
    pub usr: Option<Result<(String, UsrRef), String>>,
    /// `verity.usrhash=`, lower-cased; `Err` when present but not a hex digest.
    pub usrhash: Option<Result<String, String>>,
    /// Oddities worth a line in the record (duplicates, ignored values).
    pub warnings: Vec<String>,
}

/// Split like the kernel does: whitespace separates, double quotes group.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn parse_ref(v: &str) -> Result<UsrRef, String> {
    let (tag, rest) = v.split_once('=').unwrap_or(("", v));
    match tag.to_ascii_uppercase().as_str() {
        "PARTUUID" => {
            let u = rest.to_ascii_lowercase();
            let ok = u.len() == 36
                && u.char_indices().all(|(i, c)| {
                    if [8, 13, 18, 23].contains(&i) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                });
            if ok {
                Ok(UsrRef::PartUuid(u))
            } else {
                Err(format!("PARTUUID={rest} is not a GUID"))
            }
        }
        "PARTLABEL" if !rest.is_empty() => Ok(UsrRef::PartLabel(rest.to_string())),
        "" if rest.starts_with("/dev/") && rest.len() > 5 => {
            Ok(UsrRef::Device(PathBuf::from(rest)))
        }
        _ => Err(format!(
            "{v:?} is not a form abguard can map to a partition (PARTUUID=, PARTLABEL= or /dev/…)"
        )),
    }
}

fn parse_hash(v: &str) -> Result<String, String> {
    let h = v.to_ascii_lowercase();
    if (32..=128).contains(&h.len()) && h.len() % 2 == 0 && h.bytes().all(|b| b.is_ascii_hexdigit())
    {
        Ok(h)
    } else {
        Err(format!("verity.usrhash={v:?} is not a hex digest"))
    }
}

pub fn parse(text: &str) -> Cmdline {
    let mut seen: Vec<(String, String)> = Vec::new();
    for w in words(text) {
        let (k, v) = w.split_once('=').unwrap_or((w.as_str(), ""));
        if matches!(k, "verity.usr" | "mount.usr" | "usr" | "verity.usrhash") {
            seen.push((k.to_string(), v.to_string()));
        }
    }
    let mut c = Cmdline::default();
    let last = |key: &str| {
        seen.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    for key in ["verity.usr", "mount.usr", "usr", "verity.usrhash"] {
        let n = seen.iter().filter(|(k, _)| k == key).count();
        if n > 1 {
            c.warnings
                .push(format!("{key}= given {n} times; the last one counts"));
        }
    }
    // verity.usr names the partition under dm-verity; mount.usr then names the dm device.
    // Without verity, mount.usr (or legacy usr=) names the partition itself.
    let mount_usr = last("mount.usr");
    let mount_is_dm = mount_usr
        .as_deref()
        .is_some_and(|m| m.starts_with("/dev/mapper/") || m.starts_with("/dev/dm-"));
    c.usr = if let Some(v) = last("verity.usr") {
        Some(parse_ref(&v).map(|r| ("verity.usr".to_string(), r)))
    } else if let Some(v) = mount_usr.filter(|_| !mount_is_dm) {
        Some(parse_ref(&v).map(|r| ("mount.usr".to_string(), r)))
    } else if let Some(v) = last("usr") {
        Some(parse_ref(&v).map(|r| ("usr".to_string(), r)))
    } else if mount_is_dm {
        Some(Err(
            "mount.usr= names a device-mapper device but verity.usr= is missing".to_string(),
        ))
    } else {
        None
    };
    c.usrhash = last("verity.usrhash").map(|v| parse_hash(&v));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "7130c94a-213a-4e5a-8e26-6cce9662f132";

    fn usr(text: &str) -> Option<Result<(String, UsrRef), String>> {
        parse(text).usr
    }

    #[test]
    fn usr_table() {
        let pu = |k: &str| Some(Ok((k.to_string(), UsrRef::PartUuid(A.to_string()))));
        type Want = Option<Result<(String, UsrRef), String>>;
        let cases: Vec<(String, Want)> = vec![
            // real Flatcar verity cmdline (EC2 boot log shape)
            (
                format!("BOOT_IMAGE=/flatcar/vmlinuz-a mount.usr=/dev/mapper/usr verity.usr=PARTUUID={A} rootflags=rw mount.usrflags=ro consoleblank=0 root=LABEL=ROOT verity.usrhash=ab"),
                pu("verity.usr"),
            ),
            (format!("mount.usr=PARTUUID={A} root=LABEL=ROOT"), pu("mount.usr")),
            (format!("usr=PARTUUID={}", A.to_uppercase()), pu("usr")),
            (
                "mount.usr=/dev/mapper/usr verity.usr=PARTLABEL=USR-B".into(),
                Some(Ok(("verity.usr".into(), UsrRef::PartLabel("USR-B".into())))),
            ),
            (
                "mount.usr=/dev/vda4".into(),
                Some(Ok(("mount.usr".into(), UsrRef::Device("/dev/vda4".into())))),
            ),
            ("".into(), None),
            ("   \n".into(), None),
            ("root=LABEL=ROOT quiet".into(), None),
            // duplicates: the last one wins
            (format!("verity.usr=PARTLABEL=USR-B verity.usr=PARTUUID={A}"), pu("verity.usr")),
            // quoted values
            (format!("verity.usr=\"PARTUUID={A}\""), pu("verity.usr")),
        ];
        for (text, want) in cases {
            assert_eq!(usr(&text), want, "{text}");
        }
    }

    #[test]
    fn unusable_forms_are_reasons() {
        for text in [
            "verity.usr=LABEL=USR-A",
            "verity.usr=UUID=1234",
            "verity.usr=PARTUUID=nope",
            "verity.usr=PARTLABEL=",
            "verity.usr=",
            "verity.usr",
            "mount.usr=/dev/mapper/usr",
            "usr=/dev/",
        ] {
            assert!(matches!(usr(text), Some(Err(_))), "{text}");
        }
    }

    #[test]
    fn usrhash() {
        let h = "10AE16C5".repeat(8);
        assert_eq!(
            parse(&format!("verity.usrhash={h}")).usrhash,
            Some(Ok(h.to_lowercase()))
        );
        assert!(matches!(parse("verity.usrhash=xyz").usrhash, Some(Err(_))));
        assert!(matches!(parse("verity.usrhash=").usrhash, Some(Err(_))));
        assert_eq!(parse("quiet").usrhash, None);
    }

    #[test]
    fn duplicates_warn() {
        let c = parse(&format!("verity.usr=PARTUUID={A} verity.usr=PARTUUID={A}"));
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut s = String::new();
        for i in 0..4096u32 {
            s.push(char::from_u32((i * 7919) % 0x2FF + 1).unwrap_or('x'));
        }
        let _ = parse(&s);
        let _ = parse("\"unterminated verity.usr=PARTUUID=");
        let _ = parse("==== = =verity.usr==");
    }
}
