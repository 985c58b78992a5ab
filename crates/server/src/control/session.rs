//! One control-channel connection.
//!
//! The loop never waits on the client: replies, events and agents' answers go into the
//! session's byte-bounded [`Outbox`], written by a task of its own. A client that stops
//! reading overflows the outbox, or stops answering pings; either way it is dropped while
//! the loop keeps its timers, so one stalled console cannot hold server memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use ironmesh_core::access::Actor;
use ironmesh_core::accounts::CurrentSession;
use ironmesh_core::events::Event;
use ironmesh_core::{hex, random_bytes, DomainError};
use ironmesh_proto::control::{close_frame, Reply, Request};
use ironmesh_proto::rights::SiteRights;
use serde_json::Value;
use tokio::sync::broadcast;

use super::actions;
use crate::auth::{Client, Credentials, Method};
use crate::endpoint::{close_reason, CLOSE_GOING_AWAY, SHUTTING_DOWN};
use crate::live::consoles::{Outbox, OutboxReader, Refused, OUTBOX_LIMIT};
use crate::state::SharedState;

/// Close code for refused authentication (RFC 6455 "policy violation").
const CLOSE_POLICY: u16 = 1008;
/// Close code when the database is out (RFC 6455 registry: "Try Again Later").
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// Silence after which the server pings a console; twice that without any frame and the
/// peer is taken for dead.
const PING_AFTER: Duration = Duration::from_secs(30);
/// How long the writer may take to send the last frames once the session has ended.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// State of one authenticated connection, handed to every action.
pub struct ControlSession {
    pub state: SharedState,
    /// The user and their memberships, reloaded before every request; with the client's
    /// address and program for the audit trail.
    pub actor: Actor,
    /// `user//name/<40 hex>`: where agents' answers for this connection are routed.
    pub session_id: String,
    pub peer: SocketAddr,
    pub client: Client,
    /// The browser session cookie this connection was opened with, if any.
    pub web_cookie: Option<String>,
    /// Everything this connection sends.
    pub outbox: Outbox,
    /// When the account's password had last changed as this session knows it: a later
    /// change made elsewhere (another server, the server's command line) ends the session.
    pub credentials_ms: i64,
}

impl ControlSession {
    /// What a self-service change (e.g. of the password) keeps open.
    pub fn current(&self) -> CurrentSession {
        CurrentSession {
            control_session: self.session_id.clone(),
            web_cookie: self.web_cookie.clone(),
        }
    }

    /// Reloads the actor (rights may have changed), keeping where it comes from. `None`
    /// when the account is gone, locked, or its password changed since this session
    /// signed in.
    async fn reload_actor(&mut self) -> Result<Option<()>, DomainError> {
        match self.state.domain.actor(&self.actor.user.id).await? {
            Some(mut actor) => {
                let revoked = actor.user.password_changed_ms != self.credentials_ms
                    || actor.site().restricted(SiteRights::LOCKED);
                actor.origin = self.client.origin();
                self.actor = actor;
                Ok((!revoked).then_some(()))
            }
            None => Ok(None),
        }
    }

    /// After this session changed its own account's password: it stays signed in.
    pub fn keep_credentials(&mut self, password_changed_ms: i64) {
        self.credentials_ms = password_changed_ms;
    }
}

/// Why the loop ended: sent to the client as a close frame when it can still take one.
struct End {
    code: u16,
    reason: String,
    /// A `close` action to send first (clients key on it).
    close_action: Option<Value>,
}

impl End {
    fn new(code: u16, reason: impl Into<String>) -> End {
        End {
            code,
            reason: reason.into(),
            close_action: None,
        }
    }
}

/// Runs one control session over a WebSocket: axum's, or the compressing one browsers get
/// (`endpoint::deflate_ws`).
pub async fn run<S>(
    state: SharedState,
    socket: S,
    peer: SocketAddr,
    creds: Credentials,
    client: Client,
) where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Send
        + 'static,
{
    let (mut sink, mut stream) = socket.split();
    let signed_in = match state.auth.authenticate(&creds, &client).await {
        Ok(signed_in) => signed_in,
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
    let user = signed_in.user;
    let mut actor = match state.domain.actor(&user.id).await {
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
    actor.origin = client.origin();
    // Subscribe before the first push so no event between push and loop is lost.
    let mut events = state.domain.events.subscribe();
    let (outbox, reader) = Outbox::new(OUTBOX_LIMIT);
    let mut session = ControlSession {
        session_id: format!("{}/{}", user.id, hex(&random_bytes::<20>())),
        state,
        actor,
        peer,
        web_cookie: (signed_in.method == Method::SessionCookie)
            .then(|| creds.session_cookie.clone())
            .flatten(),
        client,
        outbox: outbox.clone(),
        credentials_ms: user.password_changed_ms,
    };
    tracing::info!(session = %session.session_id, %peer, "control channel opened");
    session
        .state
        .consoles
        .register(&session.session_id, &session.actor.user.id, outbox.clone());
    let writer = tokio::spawn(write_frames(sink, reader));

    let greeting = [
        actions::serverinfo_push(&session),
        actions::userinfo_push(&session).await,
    ];
    let mut end = None;
    for frame in greeting {
        if outbox.push_json(&frame).is_err() {
            end = Some(End::new(CLOSE_POLICY, "could not send the greeting"));
        }
    }

    let mut last_heard = tokio::time::Instant::now();
    let mut last_check = tokio::time::Instant::now();
    // How often an idle session rechecks its account (password changed, locked, removed).
    let recheck = session.state.config.account_recheck;
    let mut tick = tokio::time::interval((PING_AFTER / 2).min(recheck));
    while end.is_none() {
        end = tokio::select! {
            _ = session.state.shutdown.cancelled() => Some(End::new(CLOSE_GOING_AWAY, SHUTTING_DOWN)),
            _ = outbox.overflowed() => Some(End::new(
                CLOSE_POLICY,
                format!("too slow: more than {} MiB waiting to be sent", OUTBOX_LIMIT >> 20),
            )),
            _ = tick.tick() => {
                let silent = last_heard.elapsed();
                if silent > PING_AFTER * 2 {
                    Some(End::new(CLOSE_GOING_AWAY, "no answer to pings"))
                } else if silent > PING_AFTER {
                    outbox.push(Message::Ping(Vec::new().into())).err().map(gone)
                } else if last_check.elapsed() >= recheck {
                    // Changes made where no event reaches this server (its command line,
                    // another server) end the session too.
                    last_check = tokio::time::Instant::now();
                    match session.reload_actor().await {
                        Ok(None) => Some(revoked()),
                        _ => None,
                    }
                } else {
                    None
                }
            }
            incoming = stream.next() => {
                last_heard = tokio::time::Instant::now();
                match incoming {
                    None | Some(Ok(Message::Close(_))) => Some(End::new(1000, "")),
                    Some(Ok(Message::Text(text))) => handle_text(&mut session, text.as_str()).await.err(),
                    Some(Ok(Message::Binary(_))) => {
                        let reply = Reply::new("error")
                            .with("cause", "binary")
                            .with("result", "Binary frames are not accepted here; send JSON text frames")
                            .into_value();
                        outbox.push_json(&reply).err().map(gone)
                    }
                    Some(Ok(_)) => None,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "control channel read error");
                        Some(match crate::endpoint::too_big_reason(&e) {
                            Some(reason) => End::new(crate::endpoint::CLOSE_TOO_BIG, reason),
                            None => End::new(1000, ""),
                        })
                    }
                }
            }
            event = events.recv() => match event {
                Ok(event) => forward_event(&mut session, &event).await.err(),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, user = %session.actor.user.id, "console lagged behind events");
                    None
                }
                Err(broadcast::error::RecvError::Closed) => Some(End::new(CLOSE_GOING_AWAY, SHUTTING_DOWN)),
            },
        };
    }
    session.state.consoles.unregister(&session.session_id);
    let end = end.unwrap_or_else(|| End::new(1000, ""));
    if end.code != 1000 || !end.reason.is_empty() {
        tracing::info!(session = %session.session_id, code = end.code, reason = ?end.reason, "control channel ended by the server");
    }
    let mut writer = writer;
    if outbox.is_overflowed() {
        // The client is not reading: drop the connection, no goodbye.
        writer.abort();
    } else {
        if let Some(action) = &end.close_action {
            let _ = outbox.push_json(action);
        }
        let _ = outbox.push(Message::Close(Some(CloseFrame {
            code: end.code,
            reason: close_reason(&end.reason).into(),
        })));
        if tokio::time::timeout(FLUSH_LIMIT, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }
    tracing::info!(user = %session.actor.user.id, peer = %session.peer, "control channel closed");
}

/// Writes queued frames until a close frame or the end of the queue.
async fn write_frames<Si>(mut sink: Si, mut reader: OutboxReader)
where
    Si: Sink<Message> + Unpin,
{
    while let Some(msg) = reader.next().await {
        let closing = matches!(msg, Message::Close(_));
        let sent = sink.send(msg.clone()).await;
        reader.written(&msg);
        if sent.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

fn gone(_: Refused) -> End {
    End::new(CLOSE_POLICY, "the connection can no longer be written")
}

async fn close<Si: Sink<Message> + Unpin>(sink: &mut Si, code: u16, reason: &str) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: close_reason(reason).into(),
        })))
        .await;
}

fn send_json(session: &ControlSession, value: &Value) -> Result<(), End> {
    session.outbox.push_json(value).map_err(gone)
}

async fn handle_text(session: &mut ControlSession, text: &str) -> Result<(), End> {
    let request = match Request::parse(text) {
        Ok(r) => r,
        Err(e) => {
            let reply = Reply::new("error")
                .with("cause", e.cause())
                .with("result", e.to_string())
                .into_value();
            return send_json(session, &reply);
        }
    };
    // Rights may have changed since the last request: reload them.
    match session.reload_actor().await {
        Ok(Some(())) => {}
        Ok(None) => return Err(revoked()),
        Err(e) => {
            if let DomainError::Internal(inner) = &e {
                tracing::error!(error = %inner, "could not reload user");
            }
            return send_json(session, &actions::failure(&request, &e.to_string()));
        }
    }
    for reply in actions::dispatch(session, &request).await {
        send_json(session, &reply)?;
    }
    Ok(())
}

/// The account's credentials no longer hold (password changed elsewhere, locked, removed).
fn revoked() -> End {
    End {
        close_action: Some(close_frame("noauth", "sessionended")),
        ..End::new(
            CLOSE_POLICY,
            "session ended: the account changed; sign in again",
        )
    }
}

fn account_removed() -> End {
    End {
        close_action: Some(close_frame("noauth", "accountremoved")),
        ..End::new(CLOSE_POLICY, "account removed")
    }
}

async fn forward_event(session: &mut ControlSession, event: &Arc<Event>) -> Result<(), End> {
    if let Some(ends) = &event.ends_sessions {
        if ends.user_id == session.actor.user.id
            && ends.keep.as_deref() != Some(session.session_id.as_str())
        {
            return Err(if event.action == "accountremove" {
                account_removed()
            } else {
                End {
                    close_action: Some(close_frame("noauth", "sessionended")),
                    ..End::new(CLOSE_POLICY, ends.reason)
                }
            });
        }
    }
    if event.targets.iter().any(|t| t == &session.actor.user.id) {
        // Membership or rights changed: see the world as it now is.
        if let Ok(None) = session.reload_actor().await {
            return Err(revoked());
        }
    }
    if session.actor.may_see(event) {
        crate::metrics::METRICS.event_queued(event);
        session
            .outbox
            .push(Message::Text(event.wire_text().to_owned().into()))
            .map_err(gone)?;
    }
    Ok(())
}
