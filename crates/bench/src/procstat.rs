//! Memory and CPU of the server under test, read from /proc. A server may be several
//! processes (MeshCentral runs its server in a child of the launcher and signs in worker
//! processes), so figures cover the process and all its descendants.

/// Resident memory of `pid` and its descendants, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let own = status_kib(pid, "VmRSS:")?;
    Some(
        own + descendants(pid)
            .into_iter()
            .filter_map(|p| status_kib(p, "VmRSS:"))
            .sum::<u64>(),
    )
}

/// CPU time of `pid` and its descendants (including children they have reaped), in clock
/// ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let own = own_cpu_ticks(pid)?;
    Some(
        own + descendants(pid)
            .into_iter()
            .filter_map(own_cpu_ticks)
            .sum::<u64>(),
    )
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of `pid`, plus cutime + cstime: the time of its children that have exited
/// and been waited for, so a tree's total does not drop when a child ends (the stock
/// MeshCentral agent starts and ends a capture process per desktop session).
fn own_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    (11..=14).map(|i| fields.get(i)?.parse::<u64>().ok()).sum()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Every process below `root`.
fn descendants(root: u32) -> Vec<u32> {
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (child, _) in all.iter().filter(|(_, parent)| *parent == p) {
            found.push(*child);
            frontier.push(*child);
        }
    }
    found
}

/// A machine-readable figure for scripts (`scripts/bench-vs-meshcentral` collects them).
pub fn result(key: &str, value: f64) {
    println!("RESULT {key} {value:.3}");
}

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
pub fn clock_ticks_per_s() -> f64 {
    100.0
}
