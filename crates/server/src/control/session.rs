//! One control-channel connection.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use ironmesh_proto::control::{close_frame, Reply, Request};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::actions;
use crate::auth::Credentials;
use crate::endpoint::{close_reason, CLOSE_GOING_AWAY, SHUTTING_DOWN};
use crate::state::SharedState;
use ironmesh_core::access::Actor;
use ironmesh_core::events::Event;
use ironmesh_core::{hex, random_bytes, DomainError};

/// Outgoing frames waiting for a slow client before requests stop being read.
const OUTBOX: usize = 256;

/// Close code for refused authentication (RFC 6455 "policy violation").
const CLOSE_POLICY: u16 = 1008;
/// Close code when the database is out (RFC 6455 registry: "Try Again Later").
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// Silence after which the server pings a console; twice that without any frame and the
/// peer is taken for dead.
const PING_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// State of one authenticated connection, handed to every action.
pub struct ControlSession {
    pub state: SharedState,
    /// The user and their memberships, reloaded before every request.
    pub actor: Actor,
    /// `user//name/<40 hex>`: where agents' answers for this connection are routed.
    pub session_id: String,
    pub peer: SocketAddr,
}

/// Runs one control session over a WebSocket: axum's, or the compressing one browsers get
/// (`endpoint::deflate_ws`).
pub async fn run<S>(state: SharedState, socket: S, peer: SocketAddr, creds: Credentials)
where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Send
        + 'static,
{
    let (mut sink, mut stream) = socket.split();
    let user = match state.auth.authenticate(&creds, peer.ip()).await {
        Ok(user) => user,
        Err(failure) if failure.outage.is_some() => {
            // Not a refusal of these credentials: no `close` action (clients would ask for a
            // password again), only "try again later" (the console then reconnects).
            close(&mut sink, CLOSE_TRY_AGAIN_LATER, &failure.reason).await;
            return;
        }
        Err(failure) => {
            let frame = close_frame(failure.cause, failure.msg);
            let _ = sink.send(Message::Text(frame.to_string().into())).await;
            close(
                &mut sink,
                CLOSE_POLICY,
                &format!("authentication failed: {}", failure.reason),
            )
            .await;
            return;
        }
    };
    let actor = match state.domain.actor(&user.id).await {
        Ok(Some(actor)) => actor,
        Ok(None) => return,
        Err(e) => {
            if let DomainError::Internal(inner) = &e {
                tracing::error!(error = %inner, "could not load user");
            }
            close(&mut sink, CLOSE_TRY_AGAIN_LATER, &e.to_string()).await;
            return;
        }
    };
    // Subscribe before the first push so no event between push and loop is lost.
    let mut events = state.domain.events.subscribe();
    let mut session = ControlSession {
        session_id: format!("{}/{}", user.id, hex(&random_bytes::<20>())),
        state,
        actor,
        peer,
    };
    tracing::info!(session = %session.session_id, %peer, "control channel opened");
    let (routed_tx, mut routed) = mpsc::channel::<Value>(crate::live::consoles::CONSOLE_INBOX);
    session
        .state
        .consoles
        .register(&session.session_id, &session.actor.user.id, routed_tx);

    let (out, mut outbox) = mpsc::channel::<Message>(OUTBOX);
    let writer = tokio::spawn(async move {
        while let Some(msg) = outbox.recv().await {
            let closing = matches!(msg, Message::Close(_));
            if sink.send(msg).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let greeting = [
        actions::serverinfo_push(&session),
        actions::userinfo_push(&session).await,
    ];
    for frame in greeting {
        if send_json(&out, frame).await.is_err() {
            return;
        }
    }

    let mut last_heard = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(PING_AFTER / 2);
    loop {
        tokio::select! {
            _ = session.state.shutdown.cancelled() => {
                let _ = out.send(Message::Close(Some(CloseFrame {
                    code: CLOSE_GOING_AWAY,
                    reason: SHUTTING_DOWN.into(),
                }))).await;
                break;
            }
            _ = tick.tick() => {
                let silent = last_heard.elapsed();
                if silent > PING_AFTER * 2 {
                    let _ = out.send(Message::Close(Some(CloseFrame {
                        code: 1001,
                        reason: "no answer to pings".into(),
                    }))).await;
                    break;
                }
                if silent > PING_AFTER && out.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            incoming = stream.next() => {
                let Some(incoming) = incoming else { break };
                last_heard = tokio::time::Instant::now();
                match incoming {
                    Ok(Message::Text(text)) => {
                        if handle_text(&mut session, &out, text.as_str()).await.is_err() {
                            break;
                        }
                    }
                    Ok(Message::Binary(_)) => {
                        let reply = Reply::new("error")
                            .with("cause", "binary")
                            .with("result", "Binary frames are not accepted here; send JSON text frames")
                            .into_value();
                        if send_json(&out, reply).await.is_err() { break; }
                    }
                    Ok(Message::Close(_)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(reason) = crate::endpoint::too_big_reason(&e) {
                            let _ = out.send(Message::Close(Some(CloseFrame {
                                code: crate::endpoint::CLOSE_TOO_BIG,
                                reason: close_reason(&reason).into(),
                            }))).await;
                        }
                        tracing::debug!(error = %e, "control channel read error");
                        break;
                    }
                }
            }
            Some(message) = routed.recv() => {
                // An agent's answer addressed to this session or user.
                if send_json(&out, message).await.is_err() {
                    break;
                }
            }
            event = events.recv() => {
                match event {
                    Ok(event) => {
                        if forward_event(&mut session, &out, &event).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, user = %session.actor.user.id, "console lagged behind events");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
    session.state.consoles.unregister(&session.session_id);
    drop(out);
    let _ = writer.await;
    tracing::info!(user = %session.actor.user.id, peer = %session.peer, "control channel closed");
}

struct Gone;

async fn close<Si: Sink<Message> + Unpin>(sink: &mut Si, code: u16, reason: &str) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: close_reason(reason).into(),
        })))
        .await;
}

async fn send_json(out: &mpsc::Sender<Message>, value: Value) -> Result<(), Gone> {
    out.send(Message::Text(value.to_string().into()))
        .await
        .map_err(|_| Gone)
}

async fn handle_text(
    session: &mut ControlSession,
    out: &mpsc::Sender<Message>,
    text: &str,
) -> Result<(), Gone> {
    let request = match Request::parse(text) {
        Ok(r) => r,
        Err(e) => {
            let reply = Reply::new("error")
                .with("cause", e.cause())
                .with("result", e.to_string())
                .into_value();
            return send_json(out, reply).await;
        }
    };
    // Rights may have changed since the last request: reload them.
    match session.state.domain.actor(&session.actor.user.id).await {
        Ok(Some(actor)) => session.actor = actor,
        Ok(None) => {
            let _ = send_json(out, close_frame("noauth", "accountremoved")).await;
            return Err(Gone);
        }
        Err(e) => {
            if let DomainError::Internal(inner) = &e {
                tracing::error!(error = %inner, "could not reload user");
            }
            return send_json(out, actions::failure(&request, &e.to_string())).await;
        }
    }
    for reply in actions::dispatch(session, &request).await {
        send_json(out, reply).await?;
    }
    Ok(())
}

async fn forward_event(
    session: &mut ControlSession,
    out: &mpsc::Sender<Message>,
    event: &Arc<Event>,
) -> Result<(), Gone> {
    let about_me = event.targets.iter().any(|t| t == &session.actor.user.id);
    if about_me {
        if event.action == "accountremove" {
            let _ = send_json(out, close_frame("noauth", "accountremoved")).await;
            return Err(Gone);
        }
        // Membership or rights changed: see the world as it now is.
        if let Ok(Some(actor)) = session.state.domain.actor(&session.actor.user.id).await {
            session.actor = actor;
        }
    }
    if session.actor.may_see(&event.targets) {
        out.send(Message::Text(event.wire_text().to_owned().into()))
            .await
            .map_err(|_| Gone)?;
    }
    Ok(())
}
