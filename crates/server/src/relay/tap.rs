//! What the server sees of a session it relays, without changing a byte of it
//! (docs/protocol/control.md §3.6): the protocol it runs (from the user side's start frames,
//! §3.4), the bytes each way and its duration, the file operations of a files session
//! (§3.5), and — when the device's group records sessions — a recording of a terminal
//! session in asciicast v2. All of it goes to the audit trail: a record when the session
//! starts, one per file operation, and one when it ends (with the recording's id).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::ws::Message;
use ironmesh_core::access::Origin;
use ironmesh_core::events::Event;
use ironmesh_core::model::{now_ms, RecordingRecord};
use ironmesh_core::recordings::FORMAT_ASCIICAST;
use ironmesh_proto::relay::{SessionKind, StartFrame};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::locks::lock;

/// Who a session acts for and with which device, for its audit records.
#[derive(Debug, Clone)]
pub struct Parties {
    pub user_id: String,
    pub username: String,
    pub origin: Origin,
    pub node_id: Option<String>,
    pub group_id: Option<String>,
    pub device_name: Option<String>,
}

/// Longest command frame of a files session that is read for the audit trail.
const MAX_COMMAND: usize = 64 * 1024;
/// The protocol number comes within the user's first few small frames (after options);
/// later or larger frames are not read for it (a session that never names one is only
/// counted).
const MAX_START_FRAMES: u32 = 8;
const MAX_START_FRAME: usize = 4096;

/// Observes one relayed session.
pub struct Tap {
    parties: Parties,
    observed: Mutex<Observed>,
    /// Audit records made while the session runs, published by the session's task.
    events: mpsc::UnboundedSender<Event>,
}

struct Observed {
    protocol: Option<u32>,
    started: Instant,
    started_ms: i64,
    bytes_from_user: u64,
    bytes_to_user: u64,
    cols: u32,
    rows: u32,
    /// Frames from the user read while looking for the protocol number.
    start_frames: u32,
    /// Where a recording goes, when this session is to be recorded.
    record_into: Option<PathBuf>,
    recorder: Option<Recorder>,
}

/// What a finished session amounted to.
pub struct Summary {
    pub protocol: Option<u32>,
    pub seconds: f64,
    pub bytes_from_user: u64,
    pub bytes_to_user: u64,
    pub recording: Option<RecordingRecord>,
}

impl Tap {
    /// A tap for a session between `parties`; terminal sessions are recorded into the
    /// folder `record_into` when given.
    pub fn new(
        parties: Parties,
        record_into: Option<PathBuf>,
    ) -> (Tap, mpsc::UnboundedReceiver<Event>) {
        let (events, rx) = mpsc::unbounded_channel();
        let tap = Tap {
            parties,
            observed: Mutex::new(Observed {
                protocol: None,
                started: Instant::now(),
                started_ms: now_ms(),
                bytes_from_user: 0,
                bytes_to_user: 0,
                cols: 80,
                rows: 24,
                start_frames: 0,
                record_into,
                recorder: None,
            }),
            events,
        };
        (tap, rx)
    }

    fn event(&self, action: &str, msg: String) -> Event {
        Event::new("relay", action, msg)
            .by(&self.parties.user_id, &self.parties.username)
            .from(self.parties.origin.clone())
            .target(&self.parties.user_id)
    }

    /// Sees one frame; `from_user` tells its direction.
    pub fn observe(&self, from_user: bool, msg: &Message) {
        let bytes: &[u8] = match msg {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            _ => return,
        };
        let mut o = lock(&self.observed);
        if from_user {
            o.bytes_from_user += bytes.len() as u64;
        } else {
            o.bytes_to_user += bytes.len() as u64;
        }
        match o.protocol {
            None if from_user => self.on_start_frame(&mut o, bytes),
            None => {}
            Some(p) => match SessionKind::of(Some(p)) {
                SessionKind::Files if from_user => self.on_file_command(bytes),
                SessionKind::Terminal => {
                    if let Some(recorder) = o.recorder.as_mut() {
                        recorder.frame(from_user, bytes);
                    }
                }
                _ => {}
            },
        }
    }

    /// The session's protocol, once the user's start frame named it.
    pub fn protocol(&self) -> Option<u32> {
        lock(&self.observed).protocol
    }

    fn on_start_frame(&self, o: &mut Observed, bytes: &[u8]) {
        if o.start_frames >= MAX_START_FRAMES || bytes.len() > MAX_START_FRAME {
            return;
        }
        o.start_frames += 1;
        let text = String::from_utf8_lossy(bytes);
        match StartFrame::parse(&text) {
            Ok(StartFrame::Options(options)) => {
                let dim = |k: &str| {
                    options
                        .get(k)
                        .and_then(Value::as_u64)
                        .filter(|v| (1..=1000).contains(v))
                };
                if let (Some(cols), Some(rows)) = (dim("cols"), dim("rows")) {
                    o.cols = cols as u32;
                    o.rows = rows as u32;
                }
            }
            Ok(StartFrame::Protocol(p)) => {
                o.protocol = Some(p);
                let kind = SessionKind::of(Some(p));
                let _ = self.events.send(
                    self.event("relaylog", format!("Started {} session", kind_name(kind)))
                        .with("protocol", p),
                );
                if kind == SessionKind::Terminal {
                    if let Some(dir) = o.record_into.take() {
                        match Recorder::start(&dir, &self.parties, o.cols, o.rows) {
                            Ok(r) => o.recorder = Some(r),
                            Err(e) => {
                                tracing::error!(error = %e, "could not start a session recording")
                            }
                        }
                    }
                }
            }
            Ok(StartFrame::Control) | Err(_) => {}
        }
    }

    /// A command of a files session (docs/protocol/control.md §3.5), if the frame is one.
    fn on_file_command(&self, bytes: &[u8]) {
        if bytes.first() != Some(&b'{') || bytes.len() > MAX_COMMAND {
            return;
        }
        let Ok(Value::Object(cmd)) = serde_json::from_slice::<Value>(bytes) else {
            return;
        };
        let text = |k: &str| cmd.get(k).and_then(Value::as_str).unwrap_or("");
        let path = text("path");
        let joined = |name: &str| {
            if name.is_empty() {
                path.to_string()
            } else {
                format!("{}/{name}", path.trim_end_matches('/'))
            }
        };
        let (what, target) = match text("action") {
            "upload" => (
                format!(
                    "Upload: {} ({} bytes)",
                    joined(text("name")),
                    cmd.get("size").and_then(Value::as_u64).unwrap_or(0)
                ),
                joined(text("name")),
            ),
            "download" if text("sub") == "start" => (format!("Download: {path}"), path.to_string()),
            "rm" => {
                let names: Vec<&str> = cmd
                    .get("delfiles")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                (
                    format!(
                        "Delete: {}",
                        names
                            .iter()
                            .map(|n| joined(n))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    path.to_string(),
                )
            }
            "rename" => (
                format!("Rename: {} to {}", joined(text("oldname")), text("newname")),
                joined(text("oldname")),
            ),
            "mkdir" => (format!("Create folder: {path}"), path.to_string()),
            _ => return,
        };
        let _ = self.events.send(
            self.event("fileop", what)
                .with("op", text("action").to_string())
                .with("path", target),
        );
    }

    /// Ends the observation: closes the recording and returns the session's summary.
    pub fn finish(&self) -> Summary {
        let mut o = lock(&self.observed);
        let ended_ms = now_ms();
        let recording = o.recorder.take().and_then(|r| match r.finish() {
            Ok((id, file, size)) => Some(RecordingRecord {
                id,
                node_id: self.parties.node_id.clone(),
                group_id: self.parties.group_id.clone(),
                user_id: self.parties.user_id.clone(),
                username: self.parties.username.clone(),
                protocol: i64::from(o.protocol.unwrap_or(1)),
                format: FORMAT_ASCIICAST.into(),
                file,
                size: size as i64,
                started_ms: o.started_ms,
                ended_ms,
                event_id: None,
            }),
            Err(e) => {
                tracing::error!(error = %e, "could not finish a session recording");
                None
            }
        });
        Summary {
            protocol: o.protocol,
            seconds: o.started.elapsed().as_secs_f64(),
            bytes_from_user: o.bytes_from_user,
            bytes_to_user: o.bytes_to_user,
            recording,
        }
    }

    /// The audit record of a finished session.
    pub fn end_event(&self, summary: &Summary) -> Event {
        let kind = SessionKind::of(summary.protocol);
        let mut event = self
            .event(
                "relaylog",
                format!(
                    "Ended {} session after {:.0} s ({} bytes sent, {} received)",
                    kind_name(kind),
                    summary.seconds,
                    summary.bytes_from_user,
                    summary.bytes_to_user
                ),
            )
            .with("duration", (summary.seconds * 1000.0).round() as u64)
            .with("bytesin", summary.bytes_from_user)
            .with("bytesout", summary.bytes_to_user);
        if let Some(p) = summary.protocol {
            event = event.with("protocol", p);
        }
        if let Some(r) = &summary.recording {
            event = event.with("recording", r.id.clone());
        }
        event
    }

    pub fn node_id(&self) -> Option<&str> {
        self.parties.node_id.as_deref()
    }
}

fn kind_name(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Terminal => "terminal",
        SessionKind::Desktop => "desktop",
        SessionKind::Files => "files",
        SessionKind::Other => "relay",
    }
}

/// An asciicast v2 recording being written: a header line, then one JSON array per event
/// (`[seconds, "o", text]` output, `"i"` input, `"r"` a resize to `"COLSxROWS"`).
struct Recorder {
    id: String,
    file: String,
    out: std::io::BufWriter<std::fs::File>,
    started: Instant,
    /// An incomplete UTF-8 sequence at the end of the last frame, per direction.
    carry: [Vec<u8>; 2],
    size: u64,
}

impl Recorder {
    fn start(
        dir: &std::path::Path,
        parties: &Parties,
        cols: u32,
        rows: u32,
    ) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(dir)?;
        let id = ironmesh_core::hex(&ironmesh_core::random_bytes::<16>());
        let file = format!("{id}.cast");
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(&file))?);
        let header = json!({
            "version": 2,
            "width": cols,
            "height": rows,
            "timestamp": now_ms() / 1000,
            "title": format!(
                "{} on {}",
                parties.username,
                parties.device_name.as_deref().unwrap_or("a device")
            ),
            "env": { "TERM": "xterm-256color" },
        });
        let line = format!("{header}\n");
        out.write_all(line.as_bytes())?;
        Ok(Recorder {
            id,
            file,
            out,
            started: Instant::now(),
            carry: [Vec::new(), Vec::new()],
            size: line.len() as u64,
        })
    }

    fn frame(&mut self, from_user: bool, bytes: &[u8]) {
        // Control messages of the tunnel (JSON with `ctrlChannel`) are not terminal data;
        // a resize is kept as an "r" event.
        if bytes.first() == Some(&b'{') {
            if let Ok(Value::Object(ctrl)) = serde_json::from_slice::<Value>(bytes) {
                if ctrl.contains_key("ctrlChannel") {
                    if ctrl.get("type").and_then(Value::as_str) == Some("termsize") {
                        let dim = |k: &str| ctrl.get(k).and_then(Value::as_u64).unwrap_or(0);
                        self.write("r", &format!("{}x{}", dim("cols"), dim("rows")));
                    }
                    return;
                }
            }
        }
        let side = usize::from(from_user);
        let mut data = std::mem::take(&mut self.carry[side]);
        data.extend_from_slice(bytes);
        // Keep an incomplete UTF-8 sequence at the end for the next frame.
        let valid = match std::str::from_utf8(&data) {
            Ok(_) => data.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => data.len(),
        };
        let text = String::from_utf8_lossy(&data[..valid]).into_owned();
        self.carry[side] = data[valid..].to_vec();
        if !text.is_empty() {
            self.write(if from_user { "i" } else { "o" }, &text);
        }
    }

    fn write(&mut self, kind: &str, text: &str) {
        let line = format!(
            "{}\n",
            json!([
                (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e6,
                kind,
                text
            ])
        );
        if self.out.write_all(line.as_bytes()).is_ok() {
            self.size += line.len() as u64;
        }
    }

    fn finish(mut self) -> std::io::Result<(String, String, u64)> {
        self.out.flush()?;
        Ok((self.id, self.file, self.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parties() -> Parties {
        Parties {
            user_id: "user//alice".into(),
            username: "alice".into(),
            origin: Origin::default(),
            node_id: Some("node//n".into()),
            group_id: Some("mesh//g".into()),
            device_name: Some("box".into()),
        }
    }

    #[test]
    fn files_commands_become_audit_records() {
        let (tap, mut events) = Tap::new(parties(), None);
        tap.observe(true, &Message::Text("5".into()));
        tap.observe(
            true,
            &Message::Text(
                r#"{"action":"upload","reqid":"up","path":"/tmp","name":"a.txt","size":12}"#.into(),
            ),
        );
        // Upload data is not a command, even when it starts like one (it is escaped).
        tap.observe(true, &Message::Binary(b"\0{not a command".to_vec().into()));
        tap.observe(
            true,
            &Message::Text(r#"{"action":"rm","path":"/tmp","delfiles":["a.txt","b"]}"#.into()),
        );
        let started = events.try_recv().unwrap();
        assert_eq!(started.msg, "Started files session");
        assert_eq!(
            events.try_recv().unwrap().msg,
            "Upload: /tmp/a.txt (12 bytes)"
        );
        assert_eq!(events.try_recv().unwrap().msg, "Delete: /tmp/a.txt, /tmp/b");
        assert!(events.try_recv().is_err());
        let summary = tap.finish();
        assert_eq!(summary.protocol, Some(5));
        assert!(summary.bytes_from_user > 100);
    }

    #[test]
    fn terminal_sessions_are_recorded_as_asciicast() {
        let dir = tempfile::tempdir().unwrap();
        let (tap, _events) = Tap::new(parties(), Some(dir.path().to_path_buf()));
        tap.observe(
            true,
            &Message::Text(r#"{"type":"options","cols":100,"rows":30}"#.into()),
        );
        tap.observe(true, &Message::Text("1".into()));
        tap.observe(true, &Message::Binary(b"ls\r".to_vec().into()));
        // "é" split across two frames.
        tap.observe(false, &Message::Binary(b"caf\xc3".to_vec().into()));
        tap.observe(false, &Message::Binary(b"\xa9\r\n".to_vec().into()));
        tap.observe(
            true,
            &Message::Text(
                r#"{"ctrlChannel":"102938","type":"termsize","cols":90,"rows":20}"#.into(),
            ),
        );
        let summary = tap.finish();
        let recording = summary.recording.expect("recorded");
        let text = std::fs::read_to_string(dir.path().join(&recording.file)).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(
            (lines[0]["width"].as_u64(), lines[0]["height"].as_u64()),
            (Some(100), Some(30))
        );
        let events: Vec<(String, String)> = lines[1..]
            .iter()
            .map(|l| {
                (
                    l[1].as_str().unwrap().to_string(),
                    l[2].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            events,
            [
                ("i".to_string(), "ls\r".to_string()),
                ("o".to_string(), "caf".to_string()),
                ("o".to_string(), "é\r\n".to_string()),
                ("r".to_string(), "90x20".to_string()),
            ]
        );
        assert_eq!(recording.size as usize, text.len());
    }
}
