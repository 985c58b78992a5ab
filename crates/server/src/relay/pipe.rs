//! Forwarding between two paired sockets (docs/protocol/control.md §3.3, §3.6): `c` to both, then
//! every frame verbatim, text as text and binary as binary, in order. Each direction forwards one
//! frame at a time and waits until the other side has taken it, so a slow reader slows its sender
//! and memory per session stays bounded. When one side ends, the other is closed; silent sessions
//! are pinged, and dead or idle ones reaped.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Mutex;

use super::close;
use super::guard::{SessionGuard, Verdict};
use super::tap::Tap;

/// Silence after which a side is pinged.
const PING_AFTER: Duration = Duration::from_secs(30);
/// A side silent this long (pings unanswered) is dead.
const DEAD_AFTER: Duration = Duration::from_secs(75);
/// A session with no data in either direction this long is closed.
const IDLE_LIMIT: Duration = Duration::from_secs(3600);

type Sink = Arc<Mutex<SplitSink<WebSocket, Message>>>;

/// How one direction ended.
enum End {
    /// The reading side closed (with its close frame, if any).
    Closed(Option<CloseFrame>),
    /// The reading side failed or went silent.
    Failed(&'static str),
    /// The reading side sent a message over the limit (reason names both sizes).
    TooBig(String),
    /// Writing to the other side failed.
    PeerGone,
    /// The server ended the session (shutting down, or the user's session revoked).
    Stopped(u16, &'static str),
    /// The user side sent what its rights do not allow (`guard`): close code and reason.
    Refused(u16, String),
}

/// Pipes frames between `a` and `b` until either ends (or `stopped` resolves with a close
/// code and reason for both), then closes both with a reason. `tap` sees every frame
/// (`a_is_user` tells directions apart) and changes none; `guard` judges each frame of the
/// user side before it is forwarded.
pub async fn run(
    a: WebSocket,
    b: WebSocket,
    a_is_user: bool,
    (tap, guard): (&Tap, SessionGuard),
    stopped: impl std::future::Future<Output = (u16, &'static str)>,
) {
    let (a_sink, a_stream) = a.split();
    let (b_sink, b_stream) = b.split();
    let (a_sink, b_sink): (Sink, Sink) =
        (Arc::new(Mutex::new(a_sink)), Arc::new(Mutex::new(b_sink)));
    for sink in [&a_sink, &b_sink] {
        let _ = sink.lock().await.send(Message::Text("c".into())).await;
    }
    let last_data = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
    let (guard_a, guard_b) = if a_is_user {
        (Some(guard), None)
    } else {
        (None, Some(guard))
    };
    let forward_ab = forward(
        a_stream,
        a_sink.clone(),
        b_sink.clone(),
        last_data.clone(),
        (a_is_user, tap, guard_a),
    );
    let forward_ba = forward(
        b_stream,
        b_sink.clone(),
        a_sink.clone(),
        last_data.clone(),
        (!a_is_user, tap, guard_b),
    );
    tokio::pin!(forward_ab, forward_ba);
    // Whichever direction ends first decides how both sides are closed.
    let (end, first_reader_sink, other_sink) = tokio::select! {
        e = &mut forward_ab => (e, a_sink.clone(), b_sink.clone()),
        e = &mut forward_ba => (e, b_sink.clone(), a_sink.clone()),
        (code, reason) = stopped => (End::Stopped(code, reason), a_sink.clone(), b_sink.clone()),
    };
    let (to_other, to_first) = match end {
        End::Closed(frame) => (
            frame
                .map(|f| CloseFrame {
                    code: f.code,
                    reason: f.reason,
                })
                .unwrap_or(CloseFrame {
                    code: close::PEER_GONE,
                    reason: "peer closed the session".into(),
                }),
            None,
        ),
        End::Failed(why) => (
            CloseFrame {
                code: close::PEER_GONE,
                reason: format!("peer connection lost: {why}").into(),
            },
            Some(CloseFrame {
                code: close::TIMEOUT,
                reason: why.into(),
            }),
        ),
        End::TooBig(reason) => (
            CloseFrame {
                code: close::PEER_GONE,
                reason: "peer sent a message over the size limit".into(),
            },
            Some(CloseFrame {
                code: crate::endpoint::CLOSE_TOO_BIG,
                reason: reason.into(),
            }),
        ),
        End::Stopped(code, reason) => {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            (frame.clone(), Some(frame))
        }
        End::Refused(code, reason) => (
            CloseFrame {
                code: close::PEER_GONE,
                reason: "the server ended the session".into(),
            },
            Some(CloseFrame {
                code,
                reason: crate::endpoint::close_reason(&reason).into(),
            }),
        ),
        End::PeerGone => (
            CloseFrame {
                code: close::PEER_GONE,
                reason: "peer closed the session".into(),
            },
            Some(CloseFrame {
                code: close::PEER_GONE,
                reason: "peer connection lost".into(),
            }),
        ),
    };
    let _ = other_sink
        .lock()
        .await
        .send(Message::Close(Some(to_other)))
        .await;
    if let Some(frame) = to_first {
        let _ = first_reader_sink
            .lock()
            .await
            .send(Message::Close(Some(frame)))
            .await;
    }
    for sink in [&a_sink, &b_sink] {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            sink.lock().await.close().await
        })
        .await;
    }
}

async fn forward(
    mut from: SplitStream<WebSocket>,
    from_sink: Sink,
    to: Sink,
    last_data: Arc<std::sync::Mutex<tokio::time::Instant>>,
    (from_user, tap, mut guard): (bool, &Tap, Option<SessionGuard>),
) -> End {
    let mut last_heard = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            msg = from.next() => {
                let msg = match msg {
                    None => return End::Closed(None),
                    Some(Err(e)) => {
                        return match crate::endpoint::too_big_reason(&e) {
                            Some(reason) => End::TooBig(reason),
                            None => End::Failed("read error"),
                        }
                    }
                    Some(Ok(m)) => m,
                };
                last_heard = tokio::time::Instant::now();
                match msg {
                    Message::Text(_) | Message::Binary(_) => {
                        *crate::locks::lock(&last_data) = last_heard;
                        tap.observe(from_user, &msg);
                        let msg = match guard.as_mut() {
                            None => msg,
                            Some(g) => match g.judge(tap.protocol(), msg) {
                                Verdict::Forward(m) => m,
                                Verdict::Drop => continue,
                                Verdict::Refuse(code, reason) => {
                                    tracing::info!(code, %reason, "relay session refused by its guard");
                                    return End::Refused(code, reason);
                                }
                            },
                        };
                        let bytes = msg.clone().into_data().len();
                        if to.lock().await.send(msg).await.is_err() {
                            return End::PeerGone;
                        }
                        crate::metrics::METRICS.relayed(from_user, bytes);
                    }
                    Message::Close(frame) => return End::Closed(frame),
                    // Pongs only prove liveness; pings are answered by the socket itself.
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let silent = last_heard.elapsed();
                if silent > DEAD_AFTER {
                    return End::Failed("no answer to pings");
                }
                if crate::locks::lock(&last_data).elapsed() > IDLE_LIMIT {
                    return End::Failed("session idle too long");
                }
                if silent > PING_AFTER {
                    let _ = from_sink.lock().await.send(Message::Ping(Vec::new().into())).await;
                }
            }
        }
    }
}
