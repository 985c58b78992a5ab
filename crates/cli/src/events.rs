//! `ironmesh events`: the audit trail, filtered (`--since`, `--user`, `--device`, …) and
//! printed as a table, CSV or JSON Lines; or, with `--follow`, events as they happen.

use ironmesh_client::control::ControlClient;
use serde_json::{json, Value};

use crate::config::Store;
use crate::output;
use crate::session::{connect, resolve_device, resolve_group};

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Jsonl,
}

/// Which stored events to list.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub since: Option<String>,
    pub until: Option<String>,
    pub user: Option<String>,
    pub device: Option<String>,
    pub group: Option<String>,
    pub action: Option<String>,
    pub limit: Option<u32>,
}

/// A time given as an age (`30m`, `12h`, `7d`) or a UTC date or time
/// (`2026-11-30`, `2026-11-30T08:00`, `2026-11-30T08:00:00Z`), as Unix ms.
pub fn parse_time(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    let t = text.trim();
    let unit = |c: char| -> Option<i64> {
        match c {
            's' => Some(1_000),
            'm' => Some(60_000),
            'h' => Some(3_600_000),
            'd' => Some(86_400_000),
            'w' => Some(7 * 86_400_000),
            _ => None,
        }
    };
    if let Some(last) = t.chars().last() {
        if let (Some(ms), Ok(n)) = (unit(last), t[..t.len() - 1].parse::<i64>()) {
            return Ok(now_ms - n * ms);
        }
    }
    let bad = || {
        anyhow::anyhow!("{text:?} is not a time: use an age like 12h or 7d, or a date like 2026-11-30 or 2026-11-30T08:00:00Z")
    };
    let t = t.trim_end_matches('Z');
    let (date, clock) = t.split_once(['T', ' ']).unwrap_or((t, ""));
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(day)), None) = (d.next(), d.next(), d.next(), d.next())
    else {
        return Err(bad());
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let mut secs = 0;
    if !clock.is_empty() {
        let parts: Vec<&str> = clock.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(bad());
        }
        let mut mult = 3600;
        for p in parts {
            let v: f64 = p.parse().map_err(|_| bad())?;
            secs += (v * f64::from(mult)) as i64;
            mult /= 60;
        }
    }
    Ok((output::days_from_civil(y, m as u32, day as u32) * 86_400 + secs) * 1000)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The request for `filters`, resolving device and group names.
async fn request(client: &mut ControlClient, filters: &Filters) -> anyhow::Result<Value> {
    let now = now_ms();
    let mut req = json!({ "action": "events", "limit": filters.limit.unwrap_or(1000) });
    if let Some(since) = &filters.since {
        req["since"] = parse_time(since, now)?.into();
    }
    if let Some(until) = &filters.until {
        req["until"] = parse_time(until, now)?.into();
    }
    if let Some(user) = &filters.user {
        req["userid"] = user.clone().into();
    }
    if let Some(action) = &filters.action {
        req["filter"] = action.clone().into();
    }
    if let Some(device) = &filters.device {
        req["nodeid"] = resolve_device(client, device).await?["_id"].clone();
    }
    if let Some(group) = &filters.group {
        req["meshid"] = resolve_group(client, group).await?["_id"].clone();
    }
    Ok(req)
}

/// A CSV field, quoted when it needs to be.
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

const COLUMNS: [&str; 9] = [
    "time", "action", "outcome", "user", "address", "device", "group", "message", "client",
];

fn row(e: &Value) -> Vec<String> {
    let text = |k: &str| e[k].as_str().unwrap_or("").to_string();
    vec![
        text("time"),
        text("action"),
        e["outcome"].as_str().unwrap_or("success").to_string(),
        e["username"]
            .as_str()
            .or(e["userid"].as_str())
            .unwrap_or("")
            .to_string(),
        text("remoteaddr"),
        text("nodeid"),
        text("meshid"),
        text("msg"),
        text("useragent"),
    ]
}

/// Lists stored events, newest first.
pub async fn history(store: &Store, filters: &Filters, format: Format) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    let req = request(&mut client, filters).await?;
    let reply = client.request(req).await?;
    if let Some(err) = reply["result"].as_str().filter(|_| reply["failed"] == true) {
        anyhow::bail!("{err}");
    }
    let events = reply["events"].as_array().cloned().unwrap_or_default();
    match format {
        Format::Jsonl => {
            for e in &events {
                println!("{e}");
            }
        }
        Format::Csv => {
            println!("{}", COLUMNS.join(","));
            for e in &events {
                println!(
                    "{}",
                    row(e).iter().map(|f| csv(f)).collect::<Vec<_>>().join(",")
                );
            }
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = events
                .iter()
                .map(|e| {
                    let r = row(e);
                    vec![
                        r[0].clone(),
                        r[1].clone(),
                        r[2].clone(),
                        r[3].clone(),
                        r[4].clone(),
                        r[7].clone(),
                    ]
                })
                .collect();
            output::table(
                &["TIME", "ACTION", "OUTCOME", "USER", "ADDRESS", "WHAT"],
                &rows,
            );
        }
    }
    Ok(())
}

/// Prints events as they happen (Ctrl-C to stop).
pub async fn follow(store: &Store, json: bool) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    eprintln!("Waiting for events (Ctrl-C to stop)…");
    loop {
        let push = tokio::select! {
            p = client.next_push() => p?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        if push["action"] != "event" {
            continue;
        }
        let e = &push["event"];
        if json {
            println!("{e}");
        } else {
            let what = match e["msg"].as_str() {
                Some(m) if !m.is_empty() => m.to_string(),
                _ => match e["action"].as_str() {
                    Some("nodeconnect") => format!(
                        "device {} {}",
                        e["nodeid"].as_str().unwrap_or(""),
                        if e["conn"] == 1 { "online" } else { "offline" }
                    ),
                    Some(a) => format!("{a} {}", e["nodeid"].as_str().unwrap_or("")),
                    None => String::new(),
                },
            };
            println!(
                "{}  {:<14} {}",
                e["time"].as_str().unwrap_or(""),
                e["action"].as_str().unwrap_or(""),
                what
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_ages_and_dates() {
        let now = 1_795_363_281_123; // 2026-11-22T16:01:21.123Z
        assert_eq!(parse_time("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(parse_time("7d", now).unwrap(), now - 7 * 86_400_000);
        assert_eq!(parse_time("2026-11-22", now).unwrap(), 1_795_305_600_000);
        assert_eq!(
            parse_time("2026-11-22T16:01:21Z", now).unwrap(),
            1_795_363_281_000
        );
        assert_eq!(
            parse_time("2026-11-22 16:01", now).unwrap(),
            1_795_363_260_000
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("2026-13-01", now).is_err());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv("plain"), "plain");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
