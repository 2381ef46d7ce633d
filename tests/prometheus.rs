//! The shipped alert rules (prometheus/abguard.rules.yml): `promtool test rules` on
//! prometheus/abguard.rules.test.yml, and a real Prometheus scraping a real
//! node_exporter's textfile collector that abguard wrote after a rollback on a disk
//! image, seen firing and then resolving through Prometheus' HTTP API.
//!
//! Without promtool/prometheus these tests skip, except under CI (`CI` set), where a
//! missing tool fails: ./ci/install-deps.sh installs Debian's prometheus and
//! prometheus-node-exporter.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = repo().join("prometheus");
    for args in [
        &["check", "rules", "abguard.rules.yml"][..],
        &["test", "rules", "abguard.rules.test.yml"][..],
    ] {
        let o = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "promtool {args:?}:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
    }
}

/// Children killed and reaped when the test ends, however it ends.
struct Procs(Vec<(&'static str, Child)>);
impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
impl Procs {
    fn spawn(&mut self, name: &'static str, cmd: &mut Command, log: &Path) {
        let f = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        self.0.push((name, child));
    }
    /// Fail early, with its log, when a child died.
    fn alive(&mut self, dir: &Path) {
        for (name, c) in &mut self.0 {
            if let Ok(Some(st)) = c.try_wait() {
                let log = std::fs::read_to_string(dir.join(format!("{name}.log")));
                panic!("{name} exited with {st}:\n{}", log.unwrap_or_default());
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET http://127.0.0.1:port/path → the JSON body, None while nothing listens.
fn get(port: u16, path: &str) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    let (head, body) = r.split_once("\r\n\r\n")?;
    if !(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200")) {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// Poll `what` until it returns Some, failing at the deadline with `desc`.
fn until<T>(
    deadline: Instant,
    procs: &mut Procs,
    dir: &Path,
    desc: &str,
    mut what: impl FnMut() -> Option<T>,
) -> T {
    loop {
        if let Some(v) = what() {
            return v;
        }
        procs.alive(dir);
        assert!(Instant::now() < deadline, "timed out waiting for {desc}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The state of `alert` in /api/v1/alerts ("pending", "firing"), None when inactive.
fn alert_state(port: u16, alert: &str) -> Option<Option<String>> {
    let v = get(port, "/api/v1/alerts")?;
    let alerts = v["data"]["alerts"].as_array()?;
    Some(
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == alert)
            .map(|a| a["state"].as_str().unwrap_or("").to_string()),
    )
}

/// The value of an instant query's single sample, None while there is none.
fn query_one(port: u16, q: &str) -> Option<f64> {
    let v = get(port, &format!("/api/v1/query?query={q}"))?;
    let r = v["data"]["result"].as_array()?;
    r.first()?["value"][1].as_str()?.parse().ok()
}

/// The shipped rules with their 1 h windows cut to `window`, so the alert resolves
/// within the test; the expressions are otherwise the shipped ones.
fn rules_with_window(window: &str) -> String {
    let text = std::fs::read_to_string(repo().join("prometheus/abguard.rules.yml")).unwrap();
    let n = text.matches("[1h])").count();
    assert!(
        n >= 2,
        "expected the rules' increase(...[1h]) windows, found {n}"
    );
    text.replace("[1h])", &format!("[{window}])"))
}

#[test]
fn a_rollback_fires_through_node_exporter_and_prometheus_then_resolves() {
    let (Some(prom), Some(ne)) = (tool("prometheus"), tool("prometheus-node-exporter")) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let textdir = d.join("textfile");
    std::fs::create_dir(&textdir).unwrap();
    let prom_file = textdir.join("abguard.prom");

    // a node on the first boot of an upgrade; before the verdict its totals are 0
    let img = staged_and_booted_b(d);
    let m = machine_on_first_boot_of_b(&img);
    assert!(m.initrd(&[]).status.success());
    let write_textfile = || {
        let o = m.verb(&[
            "status",
            "--prometheus",
            "--textfile",
            prom_file.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "status --textfile: {}", stderr(&o));
    };
    write_textfile();

    let (ne_port, prom_port) = (free_port(), free_port());
    std::fs::write(d.join("abguard.rules.yml"), rules_with_window("10s")).unwrap();
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [abguard.rules.yml]\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{ne_port}']\n"
        ),
    )
    .unwrap();
    let mut procs = Procs(Vec::new());
    procs.spawn(
        "node_exporter",
        Command::new(&ne).args([
            format!("--web.listen-address=127.0.0.1:{ne_port}"),
            "--collector.disable-defaults".into(),
            "--collector.textfile".into(),
            format!("--collector.textfile.directory={}", textdir.display()),
        ]),
        &d.join("node_exporter.log"),
    );
    procs.spawn(
        "prometheus",
        Command::new(&prom).current_dir(d).args([
            format!("--config.file={}", d.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", d.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ]),
        &d.join("prometheus.log"),
    );

    // Prometheus has scraped the pre-rollback total: the series exists at 0
    let v = until(
        deadline,
        &mut procs,
        d,
        "the first scrape of abguard_rollbacks_total",
        || query_one(prom_port, "abguard_rollbacks_total"),
    );
    assert_eq!(v, 0.0);
    assert_eq!(alert_state(prom_port, "AbguardRolledBack"), Some(None));

    // the gate fails: the slot is spent (a rollback), the timer rewrites the textfile
    let o = m.verb(&["gate-fail", "--unit", "web.service", "--no-reboot"]);
    assert!(o.status.success(), "gate-fail: {}", stderr(&o));
    write_textfile();

    for alert in ["AbguardRolledBack", "AbguardFirstBootFailed"] {
        until(deadline, &mut procs, d, &format!("{alert} firing"), || {
            (alert_state(prom_port, alert)? == Some("firing".into())).then_some(())
        });
    }
    let a = get(prom_port, "/api/v1/alerts").unwrap();
    let fired = a["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "AbguardRolledBack")
        .unwrap()
        .clone();
    assert_eq!(fired["labels"]["instance"], format!("127.0.0.1:{ne_port}"));
    assert_eq!(fired["labels"]["severity"], "critical");

    // no further rollback: one window later the alert is gone
    until(
        deadline,
        &mut procs,
        d,
        "AbguardRolledBack resolved",
        || (alert_state(prom_port, "AbguardRolledBack")?.is_none()).then_some(()),
    );
    assert_eq!(query_one(prom_port, "abguard_rollbacks_total"), Some(1.0));
}
