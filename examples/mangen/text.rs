//! What the man pages say that the CLI definition does not: FILES, EXAMPLES and SEE ALSO
//! for each page (the text lives here, in a dev tool, so it costs the static binary nothing).

const CONF: (&str, &str) = (
    "/etc/abguard/abguard.conf, /etc/abguard/abguard.conf.d/*.conf",
    "The machine's health-gate settings, read in this order after the defaults; CRITICAL_UNITS from all files are merged. abguard config prints the result; abguard butane writes 10-butane.conf at provisioning.",
);
const DEFAULTS: (&str, &str) = (
    "/usr/lib/abguard/abguard.conf",
    "Defaults of the health gate (KEY=VALUE; the keys are under CONFIGURATION).",
);
const BOOT_JSON: (&str, &str) = (
    "/run/abguard/boot.json",
    "This boot's assessment, written by abguard initrd (or assess).",
);
const FLAGS: (&str, &str) = (
    "/run/first-boot-healthy, /run/abguard/needs-health-check, /run/abguard/indeterminate",
    "Flags: the boot is known healthy; a first boot after an upgrade waits for the gate; the assessment could not decide (the reason inside).",
);
const HISTORY: (&str, &str) = (
    "/var/lib/abguard/attempts.jsonl, /var/lib/abguard/attempts.jsonl.1",
    "History, one JSON line per event with the running totals after it; at 100 lines the file moves to attempts.jsonl.1.",
);
const PROC: (&str, &str) = (
    "/proc/cmdline, /proc/self/mountinfo, /sys/class/block, /dev",
    "Where the booted slot is found (mount.usr=/verity.usr= and the device under /usr); --cmdline, --mountinfo, --sysfs and --dev replace them.",
);
const KERNELS: (&str, &str) = (
    "/boot/flatcar/vmlinuz-a, /boot/flatcar/vmlinuz-b",
    "The slots' kernels, which carry the root hash (64 hex characters at byte 0x40; arm64: 512).",
);
const HELPER: (&str, &str) = (
    "/usr/lib/abguard/abguard-cryptsetup",
    "The libcryptsetup build that the static binary hands verify over to.",
);
const REBOOT_REQUIRED: (&str, &str) = (
    "/run/reboot-required",
    "Touched by flatcar-postinst after staging; abguard-verify-staged.path then runs abguard verify --staged --unstage-on-failure.",
);
const DRACUT: (&str, &str) = (
    "/usr/lib/dracut/modules.d/50abguard",
    "The dracut module that runs abguard initrd before switch-root, and abguard emergency from the emergency hook.",
);
const MAPPER_USR: (&str, &str) = (
    "/dev/mapper/usr",
    "The dm-verity device of the booted /usr.",
);

const CHECKS: (&str, &str) = (
    "/etc/abguard/checks.d/",
    "Health checks: executables the gate runs once the critical units are up, until each exits 0 (a name ending in .wanted is only recorded when it fails).",
);
const GATE_JSON: (&str, &str) = (
    "/run/abguard/gate.json",
    "The health gate's snapshot while it waits (units, window, checks, deadline); abguard status shows it.",
);
const GATE_VERDICT: (&str, &str) = (
    "/run/abguard/gate-verdict",
    "Created once the gate's verdict is taken (by the watcher, a unit's OnFailure= hook, the deadline or an operator), so nobody acts twice.",
);
const DISABLED: (&str, &str) = (
    "/etc/abguard/disabled",
    "abguard disable writes it (since when, why): first boots pass their gate at once; abguard enable removes it.",
);
const TEXTFILE: (&str, &str) = (
    "/var/lib/node_exporter/textfile_collector/abguard.prom",
    "What abguard-metrics.service writes every minute (ABGUARD_TEXTFILE_DIR in the unit sets the directory).",
);

pub fn files(verb: Option<&str>) -> Vec<(&'static str, &'static str)> {
    match verb {
        None => vec![
            DEFAULTS,
            CONF,
            CHECKS,
            DISABLED,
            BOOT_JSON,
            FLAGS,
            GATE_JSON,
            GATE_VERDICT,
            HISTORY,
            HELD,
            PROC,
            HELPER,
            DRACUT,
        ],
        Some("status") => vec![
            PROC,
            BOOT_JSON,
            FLAGS,
            GATE_JSON,
            GATE_VERDICT,
            HISTORY,
            HELD,
            DISABLED,
            TEXTFILE,
        ],
        Some("pass-gate" | "fail-gate") => vec![FLAGS, GATE_JSON, GATE_VERDICT, HISTORY],
        Some("disable" | "enable") => vec![DISABLED, HISTORY],
        Some("next" | "stage" | "rollback") => vec![PROC],
        Some("mark-good") => vec![PROC],
        Some("initrd") => vec![PROC, BOOT_JSON, FLAGS, HISTORY, DRACUT],
        Some("assess") => vec![PROC, BOOT_JSON, FLAGS, HISTORY],
        Some("gate-pass") => vec![
            DEFAULTS,
            CONF,
            CHECKS,
            DISABLED,
            FLAGS,
            GATE_JSON,
            GATE_VERDICT,
            HISTORY,
        ],
        Some("gate-fail") => vec![DEFAULTS, CONF, DISABLED, FLAGS, GATE_VERDICT, HISTORY],
        Some("emergency") => vec![
            PROC,
            (
                "/run/abguard/emergency.json",
                "The record of the rollback, kept when the history is not reachable yet.",
            ),
            HISTORY,
            DRACUT,
        ],
        Some("config") => vec![DEFAULTS, CONF, CHECKS],
        Some("butane") => vec![(
            "/etc/abguard/abguard.conf.d/10-butane.conf",
            "The settings file the generated config writes on the machine.",
        )],
        Some("verify") => vec![KERNELS, HELPER, REBOOT_REQUIRED, HISTORY],
        Some("read-usr") => vec![MAPPER_USR, HISTORY],
        Some("allow") => vec![HELD, HISTORY],
        Some("guard-staged") => vec![HELD, KERNELS, REBOOT_REQUIRED_GUARD, HISTORY],
        Some(_) => vec![],
    }
}

const HELD: (&str, &str) = (
    "/var/lib/abguard/held.json",
    "The loop guard's held builds: dm-verity root hash, VERSION_ID, the event that failed it and when.",
);
const REBOOT_REQUIRED_GUARD: (&str, &str) = (
    "/run/reboot-required",
    "Touched by flatcar-postinst after staging; abguard-guard-staged.path then runs abguard guard-staged.",
);

/// An example: what it does, and the command line an operator types.
type Example = (&'static str, &'static str);

/// The examples of each page (`None`: abguard.8), in the order the page lists them.
const EXAMPLES: &[(Option<&str>, &[Example])] = &[
    (None, &[
        (
            "What boots next, what booted, and the last assessment:",
            "abguard status",
        ),
        (
            "The same for a disk image:",
            "abguard status --disk disk.img",
        ),
        (
            "Go back to the other slot on the next boot:",
            "abguard rollback",
        ),
        ("The effective health-gate settings:", "abguard config"),
    ]),
    (Some("status"), &[
        (
            "The slots, the next and the booted slot, the last assessment and the history:",
            "abguard status",
        ),
        (
            "As JSON, with the last 50 events:",
            "abguard status --json --history 50",
        ),
        (
            "One line for a login banner; exit 5 when something needs a look:",
            "abguard status --short",
        ),
        ("Of a disk image:", "abguard status --disk disk.img"),
        (
            "For node_exporter's textfile collector (what abguard-metrics.service runs):",
            "abguard status --prometheus --textfile /var/lib/node_exporter/textfile_collector/abguard.prom",
        ),
    ]),
    (Some("next"), &[
        (
            "Which partition GRUB would boot, without spending its try:",
            "abguard next --dry-run",
        ),
        (
            "Boot an image as GRUB would (spends one try):",
            "abguard next --disk disk.img --json",
        ),
    ]),
    (Some("stage"), &[(
        "Stage USR-B (partition 4) for the next boot:",
        "abguard stage --partition 4",
    )]),
    (Some("mark-good"), &[
        (
            "Mark the booted slot good by hand (MARK_GOOD=no):",
            "abguard mark-good",
        ),
        (
            "Mark USR-A good on an image:",
            "abguard mark-good --disk disk.img --partition 3",
        ),
    ]),
    (Some("rollback"), &[
        (
            "Boot the other slot next time, then reboot:",
            "abguard rollback && systemctl reboot",
        ),
        (
            "Roll back to a slot that never booted successfully:",
            "abguard rollback --partition 4 --force",
        ),
    ]),
    (Some("initrd"), &[
        (
            "What abguard-initrd.service runs before switch-root:",
            "abguard initrd",
        ),
        (
            "Assess without rebooting and show the record:",
            "abguard initrd --no-reboot --json",
        ),
    ]),
    (Some("assess"), &[
        (
            "What abguard-assess.service runs on stock images:",
            "abguard assess",
        ),
        (
            "Show the record, never reboot:",
            "abguard assess --no-reboot --json",
        ),
    ]),
    (Some("gate-pass"), &[(
        "What abguard-gate.service runs after boot-complete.target:",
        "abguard gate-pass",
    )]),
    (Some("gate-fail"), &[
        (
            "What abguard-failed@nginx.service runs when nginx.service failed:",
            "abguard gate-fail --unit nginx.service",
        ),
        (
            "What abguard-deadline.service runs when the deadline passed:",
            "abguard gate-fail",
        ),
    ]),
    (Some("emergency"), &[("What the dracut emergency hook runs:", "abguard emergency")]),
    (Some("config"), &[
        (
            "The effective settings and the files they came from:",
            "abguard config",
        ),
        ("Of a mounted image:", "abguard config --root /mnt --json"),
    ]),
    (Some("butane"), &[
        (
            "A Butane config that gates upgrades on nginx and rolls back after 10 minutes:",
            "abguard butane --critical-unit nginx.service --deadline 10min > abguard.bu",
        ),
        (
            "The Ignition JSON directly:",
            "abguard butane --critical-unit nginx.service --format ignition > config.ign",
        ),
    ]),
    (Some("verify"), &[
        (
            "Verify the staged update before rebooting into it:",
            "abguard verify --staged",
        ),
        (
            "What abguard-verify-staged.service runs:",
            "abguard verify --staged --unstage-on-failure",
        ),
        (
            "A slot image against a known root hash:",
            "abguard verify --device usr-b.img --root-hash 0123...cdef --json",
        ),
    ]),
    (Some("read-usr"), &[
        (
            "What abguard-read-usr.service runs (VERIFY_USR=yes):",
            "abguard read-usr --record",
        ),
        (
            "Read with O_DIRECT in 8 MiB reads:",
            "abguard read-usr --direct --block-size 8M",
        ),
    ]),
    (Some("allow"), &[
        (
            "Let version 3510.2.1 be staged again after its fix was confirmed elsewhere:",
            "abguard allow --version 3510.2.1",
        ),
        ("Release every held build:", "abguard allow --all --json"),
    ]),
    (Some("guard-staged"), &[(
        "What abguard-guard-staged.service runs when /run/reboot-required appears:",
        "abguard guard-staged",
    )]),
    (Some("pass-gate"), &[
        (
            "Pass the pending gate (the service is fine, a check is wrong):",
            "abguard pass-gate --reason 'INC-42: check fixed upstream'",
        ),
        (
            "Pass it and mark the slot good at once:",
            "abguard pass-gate --mark-good",
        ),
    ]),
    (Some("fail-gate"), &[(
        "Give up on this update now (spends the slot, reboots into the other):",
        "abguard fail-gate --reason 'canary errors'",
    )]),
    (Some("disable"), &[(
        "Switch the health gate off on this node while debugging:",
        "abguard disable --reason 'INC-42'",
    )]),
    (Some("enable"), &[("Switch it on again:", "abguard enable")]),
];

pub fn examples(verb: Option<&str>) -> Vec<Example> {
    EXAMPLES
        .iter()
        .find(|(v, _)| *v == verb)
        .map_or_else(Vec::new, |(_, e)| e.to_vec())
}

pub fn see_also(verb: Option<&str>) -> String {
    let mut v: Vec<&str> = match verb {
        None => vec![],
        Some(_) => vec!["abguard(8)"],
    };
    v.extend(match verb {
        None => &[
            "bootup(7)",
            "systemd.special(7)",
            "systemd.generator(7)",
            "dracut.modules(7)",
        ][..],
        Some("status") => &[
            "abguard-next(8)",
            "abguard-rollback(8)",
            "abguard-pass-gate(8)",
        ],
        Some("next" | "stage" | "mark-good") => &["abguard-status(8)", "abguard-rollback(8)"],
        Some("rollback") => &["abguard-status(8)", "abguard-mark-good(8)"],
        Some("initrd" | "assess") => &[
            "abguard-gate-pass(8)",
            "abguard-gate-fail(8)",
            "bootup(7)",
            "dracut.modules(7)",
        ],
        Some("gate-pass" | "gate-fail") => &[
            "abguard-initrd(8)",
            "abguard-config(8)",
            "systemd.special(7)",
        ],
        Some("emergency") => &["abguard-initrd(8)", "dracut.modules(7)"],
        Some("config") => &["abguard-butane(8)", "abguard-gate-pass(8)"],
        Some("butane") => &["abguard-config(8)"],
        Some("verify") => &["abguard-read-usr(8)", "veritysetup(8)"],
        Some("read-usr") => &["abguard-verify(8)", "abguard-config(8)"],
        Some("allow" | "guard-staged") => &["abguard-status(8)", "abguard-stage(8)"],
        Some("pass-gate" | "fail-gate") => &["abguard-status(8)", "abguard-mark-good(8)"],
        Some("disable" | "enable") => &["abguard-status(8)", "abguard-config(8)"],
        Some(_) => &[],
    });
    v.join(", ")
}
