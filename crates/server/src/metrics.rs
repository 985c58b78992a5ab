//! What the server counts, and the Prometheus text format it is read in (`/metrics`, served
//! by `web::monitoring`, which adds the gauges read from the live registries at scrape time).
//!
//! A small registry of atomics rather than a metrics crate: the set of metrics is fixed and
//! short, the exposition format is a page of text, and the crates (`prometheus-client`,
//! `metrics` with its exporter) would add dependencies and build time for a registry,
//! dynamic labels and an HTTP listener this server does not need.
//!
//! One registry per process ([`METRICS`]), as there is one server per process; counting is
//! one relaxed atomic add on paths that run per frame or per statement (relay bytes,
//! histograms). Counters with labels ([`Family`]) take a short lock and are used only once
//! per connection, session or sign-in. Label values are `&'static str` chosen by the code,
//! so no client-supplied text becomes a label and the number of series stays bounded; the
//! one label taken from data (the device group of `ironmesh_agents_online`) is escaped by
//! [`Exposition`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ironmesh_core::events::Event;
use ironmesh_core::observe::{DatabaseObserver, DbFailure, DbWork};
use ironmesh_proto::relay::SessionKind;

/// The process's metrics.
pub static METRICS: Metrics = Metrics::new();

pub struct Metrics {
    /// Agent handshakes by `path` (`full`, `skip`, `unknown` when it failed before the
    /// agent chose) and `result`.
    handshakes: Family<2>,
    /// Relayed payload bytes, counted per frame once it was handed to the other side.
    relay_bytes_from_user: AtomicU64,
    relay_bytes_to_user: AtomicU64,
    /// Relay sessions that ended, by `kind` (terminal, desktop, files, other).
    relay_sessions: Family<1>,
    /// From `Domain::publish` to the event being queued to one console.
    event_fanout: Histogram,
    db_statements: Histogram,
    db_transactions: Histogram,
    /// By [`DbFailure`]: unavailable, storage full, other.
    db_errors: [AtomicU64; 3],
    /// Refused sign-ins by `method` (every method, every transport).
    login_failures: Family<1>,
}

impl Metrics {
    const fn new() -> Metrics {
        Metrics {
            handshakes: Family::new(),
            relay_bytes_from_user: AtomicU64::new(0),
            relay_bytes_to_user: AtomicU64::new(0),
            relay_sessions: Family::new(),
            event_fanout: Histogram::new(),
            db_statements: Histogram::new(),
            db_transactions: Histogram::new(),
            db_errors: [const { AtomicU64::new(0) }; 3],
            login_failures: Family::new(),
        }
    }

    /// An agent handshake ended: `skip` is the path it took when known (after it
    /// authenticated), `result` one of `ok`, `refused`, `timeout`, `registration_refused`.
    pub fn agent_handshake(&self, skip: Option<bool>, result: &'static str) {
        let path = match skip {
            Some(true) => "skip",
            Some(false) => "full",
            None => "unknown",
        };
        self.handshakes.inc([path, result]);
    }

    /// One relayed frame of `bytes` bytes reached the other side.
    pub fn relayed(&self, from_user: bool, bytes: usize) {
        let counter = if from_user {
            &self.relay_bytes_from_user
        } else {
            &self.relay_bytes_to_user
        };
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A relay session ended; `protocol` is the one its user side started, if any.
    pub fn relay_session_ended(&self, protocol: Option<u32>) {
        self.relay_sessions.inc([match SessionKind::of(protocol) {
            SessionKind::Terminal => "terminal",
            SessionKind::Desktop => "desktop",
            SessionKind::Files => "files",
            SessionKind::Other => "other",
        }]);
    }

    /// An event is being queued to a console.
    pub fn event_queued(&self, event: &Event) {
        if let Some(latency) = event.since_published() {
            self.event_fanout.observe(latency);
        }
    }

    /// A sign-in was refused; `method` names how it was tried.
    pub fn login_failed(&self, method: &'static str) {
        self.login_failures.inc([method]);
    }

    /// The counters and histograms, in the exposition format.
    pub fn render(&self, out: &mut Exposition) {
        self.handshakes.render(
            out,
            "ironmesh_agent_handshakes_total",
            "Agent handshakes by path (full: server signature; skip: the agent already trusted this server) and result.",
            ["path", "result"],
        );
        out.header(
            "ironmesh_relay_bytes_total",
            "counter",
            "Bytes relayed between users and devices, by direction.",
        );
        for (direction, counter) in [
            ("from_user", &self.relay_bytes_from_user),
            ("to_user", &self.relay_bytes_to_user),
        ] {
            out.sample(
                "ironmesh_relay_bytes_total",
                &[("direction", direction)],
                counter.load(Ordering::Relaxed),
            );
        }
        self.relay_sessions.render(
            out,
            "ironmesh_relay_sessions_total",
            "Relay sessions that ended, by kind.",
            ["kind"],
        );
        self.event_fanout.render(
            out,
            "ironmesh_event_fanout_seconds",
            "Time from an event's publication to its queueing to a console.",
            &[],
        );
        out.header(
            "ironmesh_db_seconds",
            "histogram",
            "Database latency: single statements (with the wait for a connection), and transactions from start to commit.",
        );
        self.db_statements
            .samples(out, "ironmesh_db_seconds", &[("op", "statement")]);
        self.db_transactions
            .samples(out, "ironmesh_db_seconds", &[("op", "transaction")]);
        out.header(
            "ironmesh_db_errors_total",
            "counter",
            "Failed database requests, by kind.",
        );
        for (kind, counter) in ["unavailable", "storage_full", "other"]
            .iter()
            .zip(&self.db_errors)
        {
            out.sample(
                "ironmesh_db_errors_total",
                &[("kind", kind)],
                counter.load(Ordering::Relaxed),
            );
        }
        self.login_failures.render(
            out,
            "ironmesh_login_failures_total",
            "Refused sign-ins, by method.",
            ["method"],
        );
    }
}

impl DatabaseObserver for Metrics {
    fn timed(&self, work: DbWork, elapsed: Duration) {
        match work {
            DbWork::Statement => self.db_statements.observe(elapsed),
            DbWork::Transaction => self.db_transactions.observe(elapsed),
        }
    }

    fn failed(&self, failure: DbFailure) {
        let index = match failure {
            DbFailure::Unavailable => 0,
            DbFailure::StorageFull => 1,
            DbFailure::Other => 2,
        };
        self.db_errors[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters told apart by `L` labels whose values the code names.
pub struct Family<const L: usize> {
    series: Mutex<Vec<([&'static str; L], u64)>>,
}

impl<const L: usize> Family<L> {
    const fn new() -> Self {
        Family {
            series: Mutex::new(Vec::new()),
        }
    }

    fn inc(&self, labels: [&'static str; L]) {
        let mut series = crate::locks::lock(&self.series);
        match series.iter_mut().find(|(l, _)| *l == labels) {
            Some((_, n)) => *n += 1,
            None => series.push((labels, 1)),
        }
    }

    fn render(&self, out: &mut Exposition, name: &str, help: &str, names: [&str; L]) {
        out.header(name, "counter", help);
        let mut series = crate::locks::lock(&self.series).clone();
        series.sort();
        for (values, n) in series {
            let labels: Vec<(&str, &str)> = names.iter().copied().zip(values).collect();
            out.sample(name, &labels, n);
        }
    }
}

/// Upper bounds (seconds) of the histograms' buckets: sub-millisecond statements to the
/// pool's 5 s wait for a connection and beyond.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram: one atomic per bucket (not cumulative; summed when read), the sum
/// in nanoseconds.
pub struct Histogram {
    /// `counts[i]`: observations in `(BUCKETS[i-1], BUCKETS[i]]`; the last one past all.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            counts: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut Exposition, name: &str, help: &str, labels: &[(&str, &str)]) {
        out.header(name, "histogram", help);
        self.samples(out, name, labels);
    }

    /// The `_bucket`, `_sum` and `_count` lines, under a header written by the caller.
    fn samples(&self, out: &mut Exposition, name: &str, labels: &[(&str, &str)]) {
        let bucket_name = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = match BUCKETS.get(i) {
                Some(bound) => bound.to_string(),
                None => "+Inf".to_string(),
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            out.sample(&bucket_name, &with_le, cumulative);
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        out.sample(&format!("{name}_sum"), labels, sum);
        out.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// A page in the Prometheus text exposition format (version 0.0.4).
#[derive(Default)]
pub struct Exposition {
    text: String,
}

/// The `Content-Type` of [`Exposition`] text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    /// `# HELP` and `# TYPE` of a metric.
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label_value(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A gauge with one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.header(name, "gauge", help);
        self.sample(name, &[], value);
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

/// A label value as the format wants it: backslash, double quote and line feed escaped.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Resident memory, open file descriptors and CPU time of this process, from `/proc`
/// (nothing on systems without it).
pub fn render_process(out: &mut Exposition) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf reads a system constant; no memory is passed.
        let (page, ticks) = unsafe {
            (
                libc::sysconf(libc::_SC_PAGESIZE),
                libc::sysconf(libc::_SC_CLK_TCK),
            )
        };
        if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        {
            out.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                pages * page.max(0) as u64,
            );
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            out.gauge(
                "process_open_fds",
                "Number of open file descriptors.",
                fds.count(),
            );
        }
        // SAFETY: getrlimit writes into the struct it is given.
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            out.gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                limit.rlim_cur,
            );
        }
        // Fields 14 and 15 of /proc/self/stat (utime, stime) in clock ticks, counted after
        // the command name, which is in parentheses and may hold spaces.
        let cpu = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 1..];
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let utime: u64 = fields.get(11)?.parse().ok()?;
                let stime: u64 = fields.get(12)?.parse().ok()?;
                Some((utime + stime) as f64 / ticks.max(1) as f64)
            });
        if let Some(seconds) = cpu {
            out.header(
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
            );
            out.sample("process_cpu_seconds_total", &[], seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("two\nlines"), "two\\nlines");
        let mut out = Exposition::default();
        out.sample("x", &[("group", "say \"hi\"\n")], 1);
        assert_eq!(out.into_text(), "x{group=\"say \\\"hi\\\"\\n\"} 1\n");
    }

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let mut out = Exposition::default();
        h.render(&mut out, "t_seconds", "test", &[("op", "x")]);
        let text = out.into_text();
        assert!(
            text.contains("t_seconds_bucket{op=\"x\",le=\"0.0005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{op=\"x\",le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{op=\"x\",le=\"10\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{op=\"x\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_count{op=\"x\"} 3\n"), "{text}");
        assert!(text.contains("t_seconds_sum{op=\"x\"} 60.0031\n"), "{text}");
    }

    #[test]
    fn families_keep_one_series_per_label_set() {
        let f: Family<2> = Family::new();
        f.inc(["skip", "ok"]);
        f.inc(["full", "ok"]);
        f.inc(["skip", "ok"]);
        let mut out = Exposition::default();
        f.render(&mut out, "h_total", "help", ["path", "result"]);
        assert_eq!(
            out.into_text(),
            "# HELP h_total help\n# TYPE h_total counter\n\
             h_total{path=\"full\",result=\"ok\"} 1\n\
             h_total{path=\"skip\",result=\"ok\"} 2\n"
        );
    }
}
