//! In-process tests of the control actions: a real [`AppState`] (built by
//! [`AppState::new`], as the server builds it) over an in-memory SQLite database, users,
//! groups and devices created through `Domain`, and one [`ControlSession`] per user on which
//! requests run through [`dispatch`] as the socket loop runs them. No binary, no sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use ironmesh_core::access::Actor;
use ironmesh_core::accounts::NewUser;
use ironmesh_core::devices::LiveState;
use ironmesh_core::events::{iso_time, EndSessions, Event};
use ironmesh_core::gateways::{AdmissionRule, GatewayReport};
use ironmesh_core::groups::MTYPE_AGENT;
use ironmesh_core::model::{now_ms, DeviceGroup, DeviceRecord, DeviceReport, EventFilter, User};
use ironmesh_core::{hex, random_bytes, Domain};
use ironmesh_proto::agent::{sha384, AuthInfo};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{b64_at_dollar, decode_b64_at_dollar, hex_upper, id_key};
use ironmesh_proto::rights::{MeshRights, SiteRights};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::{dispatch, ACTION_NAMES};
use crate::agent_cores::CoreProvider;
use crate::auth::{Client, Credentials, Method};
use crate::config::{Config, Overrides};
use crate::control::session::ControlSession;
use crate::identity::{IdentityOptions, ServerIdentity};
use crate::live::agents::{AgentHandle, ToAgent};
use crate::state::{AppState, SharedState};

/// Site rights of every full administrator, and rights of a full group administrator.
const FULL: u32 = u32::MAX;
/// Alice's rights on Office: edit it, manage its members, remote control and commands.
const ALICE_RIGHTS: u32 = MeshRights::EDIT_MESH
    | MeshRights::MANAGE_USERS
    | MeshRights::REMOTE_CONTROL
    | MeshRights::REMOTE_COMMAND;
/// The address every test session connects from.
const PEER: &str = "127.0.0.1:50000";
/// The address every test device connected from.
const DEVICE_ADDR: &str = "10.0.0.5:40000";
/// When the agents [`World::connect`] registers connected (Unix ms).
const CONNECTED_MS: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// The files of one server identity (2048-bit agent key), generated once per test run;
/// every state loads its own copy from a fresh folder.
fn identity_files() -> &'static [(std::ffi::OsString, Vec<u8>)] {
    static FILES: OnceLock<Vec<(std::ffi::OsString, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        ServerIdentity::load_or_create(&IdentityOptions {
            data_dir: dir.path(),
            server_name: "localhost",
            agent_key_bits: 2048,
            custom_web: None,
        })
        .unwrap();
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (entry.file_name(), std::fs::read(entry.path()).unwrap())
            })
            .collect()
    })
}

/// A database name no other state of this process uses: `cache=shared` makes every
/// connection of the pool open the same in-memory database (a plain `sqlite::memory:`
/// gives each connection its own).
fn memory_database_url() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "sqlite:file:ironmesh-actions-{}-{}?mode=memory&cache=shared",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A state as the server builds it, on an in-memory database.
async fn test_state(data_dir: &std::path::Path) -> SharedState {
    test_state_with(data_dir, |_| {}).await
}

/// A state as the server builds it, on an in-memory database, from the configuration as
/// `adjust` leaves it (as a configuration file would set it).
async fn test_state_with(
    data_dir: &std::path::Path,
    adjust: impl FnOnce(&mut Config),
) -> SharedState {
    for (name, bytes) in identity_files() {
        std::fs::write(data_dir.join(name), bytes).unwrap();
    }
    let mut config = Config::resolve(
        data_dir,
        None,
        Overrides {
            database_url: Some(memory_database_url()),
            fast_cert: true,
            ..Default::default()
        },
    )
    .unwrap();
    adjust(&mut config);
    let identity = ServerIdentity::load_or_create(&IdentityOptions {
        data_dir: &config.data_dir,
        server_name: &config.server_name,
        agent_key_bits: config.agent_key_bits,
        custom_web: None,
    })
    .unwrap();
    let domain = Domain::open(&config.database_url).await.unwrap();
    Arc::new(
        AppState::new(config, identity, domain, CoreProvider::default())
            .await
            .unwrap(),
    )
}

/// One server with:
/// - users `admin` (full site administrator), `alice` and `bob` (no site rights); tests
///   that need `manager` (who manages accounts) add him with [`World::add_manager`], as
///   every account costs an argon2 hash;
/// - group Office (created by admin: its full member), where alice holds [`ALICE_RIGHTS`]
///   and bob no rights (he sees it and its devices, nothing more), with device `office-pc`;
/// - group Lab (admin only), with device `lab-pc`: neither alice nor bob can see it.
struct World {
    state: SharedState,
    /// Every event published since before the first user was created.
    events: broadcast::Receiver<Arc<Event>>,
    admin: User,
    alice: User,
    bob: User,
    office: DeviceGroup,
    lab: DeviceGroup,
    office_pc: DeviceRecord,
    lab_pc: DeviceRecord,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let state = test_state(dir.path()).await;
        let events = state.domain.events.subscribe();
        let admin = add_user(&state.domain, "admin", SiteRights::FULL).await;
        let alice = add_user(&state.domain, "alice", 0).await;
        let bob = add_user(&state.domain, "bob", 0).await;
        let admin_actor = actor(&state.domain, &admin).await;
        let office = create_group(&state.domain, &admin_actor, "Office").await;
        // Lists come in creation order (by millisecond): Lab is made a little later.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let lab = create_group(&state.domain, &admin_actor, "Lab").await;
        add_member(&state.domain, &admin_actor, &office, &alice, ALICE_RIGHTS).await;
        add_member(&state.domain, &admin_actor, &office, &bob, 0).await;
        let office_pc = register_device(&state.domain, &office, "office-pc").await;
        let lab_pc = register_device(&state.domain, &lab, "lab-pc").await;
        World {
            state,
            events,
            admin,
            alice,
            bob,
            office,
            lab,
            office_pc,
            lab_pc,
            _dir: dir,
        }
    }

    /// Adds `manager`, who manages accounts and is in no group.
    async fn add_manager(&self) -> User {
        add_user(self.domain(), "manager", SiteRights::MANAGE_USERS).await
    }

    fn domain(&self) -> &Domain {
        &self.state.domain
    }

    /// A control session of `user`, as the socket loop sets it up after authentication.
    async fn session(&self, user: &User) -> ControlSession {
        session(&self.state, user).await
    }

    /// Puts a registry entry for `device` as a connected agent would; returns what the
    /// server sends to it.
    fn connect(&self, device: &DeviceRecord) -> mpsc::Receiver<ToAgent> {
        let (tx, rx) = mpsc::channel(16);
        self.state.agents.insert(
            &device.id,
            AgentHandle {
                conn_id: self.state.agents.next_conn_id(),
                group_id: device.group_id.clone(),
                agent_id: device.agent_id as u32,
                connected_ms: CONNECTED_MS,
                addr: DEVICE_ADDR.parse::<SocketAddr>().unwrap(),
                tx,
            },
        );
        rx
    }

    /// The events published since the last call (or since the world was created).
    fn published(&mut self) -> Vec<Arc<Event>> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            out.push(event);
        }
        out
    }
}

/// A control session of `user` on `state`, as the socket loop sets it up after
/// authentication: connected from [`PEER`], without a browser cookie or user agent.
async fn session(state: &SharedState, user: &User) -> ControlSession {
    let peer: SocketAddr = PEER.parse().unwrap();
    let client = Client {
        ip: peer.ip(),
        user_agent: None,
    };
    let mut actor = actor(&state.domain, user).await;
    actor.origin = client.origin();
    ControlSession {
        state: state.clone(),
        actor,
        session_id: format!("{}/{}", user.id, hex(&random_bytes::<20>())),
        peer,
        client,
        web_cookie: None,
        outbox: crate::live::consoles::Outbox::new(crate::live::consoles::OUTBOX_LIMIT).0,
        credentials_ms: user.password_changed_ms,
    }
}

async fn add_user(domain: &Domain, name: &str, site_rights: u32) -> User {
    domain
        .add_user(
            None,
            NewUser {
                username: name.into(),
                password: format!("{name}-password"),
                site_rights,
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

async fn actor(domain: &Domain, user: &User) -> Actor {
    domain.actor(&user.id).await.unwrap().unwrap()
}

async fn create_group(domain: &Domain, creator: &Actor, name: &str) -> DeviceGroup {
    domain
        .create_group(creator, name, MTYPE_AGENT, "")
        .await
        .unwrap()
}

async fn add_member(domain: &Domain, by: &Actor, group: &DeviceGroup, user: &User, rights: u32) {
    let outcome = domain
        .add_group_members(
            by,
            group,
            MeshRights(FULL),
            std::slice::from_ref(&user.id),
            rights,
        )
        .await
        .unwrap();
    assert_eq!(outcome, vec![Ok(user.name.clone())]);
}

/// A device as an agent's registration creates it: command 3 names the group, the node id
/// is derived from the name here (from the agent's key in real life).
async fn register_device(domain: &Domain, group: &DeviceGroup, name: &str) -> DeviceRecord {
    let info = AuthInfo {
        info_version: 1,
        agent_id: 6,
        agent_version: 0,
        platform_type: 4,
        mesh_id: decode_b64_at_dollar(id_key(&group.id)).unwrap(),
        capabilities: 0,
        hostname: format!("{name}-host"),
    };
    let node_id = format!("node//{}", b64_at_dollar(&sha384(name.as_bytes())));
    let registration = domain
        .register_agent(&node_id, &info, Some(name), DEVICE_ADDR)
        .await
        .unwrap();
    assert!(registration.is_new);
    registration.device
}

/// One request, handled as the socket loop handles a text frame: parsed from its text,
/// the caller's rights reloaded (with where the session comes from), then dispatched.
/// Returns the replies in order. The loop would have ended a session whose account
/// changed meanwhile ([`ended`]): such a session sends nothing more.
async fn call(s: &mut ControlSession, request: Value) -> Vec<Value> {
    let req = Request::parse(&request.to_string()).expect("a valid envelope");
    assert!(
        !ended(s).await,
        "the socket loop would have ended this session before {request}"
    );
    let mut actor = s
        .state
        .domain
        .actor(&s.actor.user.id)
        .await
        .unwrap()
        .expect("the caller's account exists");
    actor.origin = s.client.origin();
    s.actor = actor;
    dispatch(s, &req).await
}

/// Whether the socket loop ends `s` at its next frame: its account is gone or locked, or
/// its password changed since the session signed in (and not by this session).
async fn ended(s: &ControlSession) -> bool {
    match s.state.domain.actor(&s.actor.user.id).await.unwrap() {
        None => true,
        Some(actor) => {
            actor.user.password_changed_ms != s.credentials_ms
                || actor.site().restricted(SiteRights::LOCKED)
        }
    }
}

/// A request answered by exactly one reply.
async fn one(s: &mut ControlSession, request: Value) -> Value {
    let mut replies = call(s, request.clone()).await;
    assert_eq!(replies.len(), 1, "{request} got {replies:?}");
    replies.remove(0)
}

/// A refusal as [`super::failure`] builds it.
fn refused(action: &str, result: &str) -> Value {
    json!({ "action": action, "result": result, "failed": true })
}

fn ok(action: &str) -> Value {
    json!({ "action": action, "result": "ok" })
}

/// The JSON of a message the server sent to an agent.
fn sent(rx: &mut mpsc::Receiver<ToAgent>) -> Value {
    match rx.try_recv() {
        Ok(ToAgent::Json(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a JSON message for the agent, got {other:?}"),
    }
}

/// One account as `users` lists it.
async fn listed_user(s: &mut ControlSession, id: &str) -> Value {
    let listed = one(s, json!({ "action": "users" })).await;
    listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"))
}

/// A user as `users` and `userinfo` show it (without email, real name, reset flag).
fn user_view(user: &User, links: Value) -> Value {
    let mut view = json!({
        "_id": user.id,
        "name": user.name,
        "creation": user.created_ms / 1000,
        "passchange": user.password_changed_ms / 1000,
    });
    // Absent when empty, as MeshCentral stores them.
    if links.as_object().is_some_and(|l| !l.is_empty()) {
        view["links"] = links;
    }
    if user.site_rights != 0 {
        view["siteadmin"] = user.site_rights.into();
    }
    view
}

/// A group as `meshes` shows it.
fn group_view(group: &DeviceGroup, links: Value) -> Value {
    json!({
        "type": "mesh",
        "_id": group.id,
        "name": group.name,
        "mtype": 2,
        "domain": "",
        "links": links,
        "creation": group.created_ms,
        "creatorid": group.creator_id,
        "creatorname": group.creator_name,
    })
}

/// A device as `nodes` shows it while its agent is offline.
fn node_view(device: &DeviceRecord) -> Value {
    json!({
        "type": "node",
        "mtype": 2,
        "_id": device.id,
        "meshid": device.group_id,
        "name": device.name,
        "rname": device.host,
        "host": null,
        "domain": "",
        "icon": 4,
        "osdesc": "",
        "agent": { "id": 6, "ver": 0, "caps": 0 },
        "ip": "10.0.0.5",
        "firstconnect": device.first_connect_ms,
        "lastconnect": device.last_connect_ms,
        "conn": 0,
        "pwr": 0,
    })
}

// ---------------------------------------------------------------------------------------
// The harness itself
// ---------------------------------------------------------------------------------------

#[test]
fn action_names_are_unique() {
    let mut names = ACTION_NAMES.to_vec();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), ACTION_NAMES.len());
}

/// The pool's connections share one in-memory database (with a plain `sqlite::memory:`
/// the connections opened for concurrent requests would find no tables).
#[tokio::test]
async fn the_pool_shares_one_in_memory_database() {
    let dir = tempfile::tempdir().unwrap();
    let state = test_state(dir.path()).await;
    add_user(&state.domain, "admin", SiteRights::FULL).await;
    let counts =
        futures_util::future::join_all((0..8).map(|_| state.domain.users_with_memberships())).await;
    for count in counts {
        assert_eq!(count.unwrap().len(), 1);
    }
    // Another state has a database of its own.
    let other_dir = tempfile::tempdir().unwrap();
    let other = test_state(other_dir.path()).await;
    assert_eq!(other.domain.user_count().await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------
// serverinfo, userinfo, ping
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn info_actions() {
    let w = World::new().await;
    let mut alice = w.session(&w.alice).await;

    let before = now_ms();
    let mut reply = one(
        &mut alice,
        json!({ "action": "serverinfo", "responseid": "s1", "tag": 7 }),
    )
    .await;
    let after = now_ms();
    let time = reply["serverinfo"]["serverTime"].as_i64().unwrap();
    assert!((before..=after).contains(&time), "{reply}");
    reply["serverinfo"]["serverTime"] = 0.into();
    // The web certificate's end, in ms: in the future.
    assert!(
        reply["serverinfo"]["certExpire"].as_i64().unwrap() > after,
        "{reply}"
    );
    let identity = &w.state.identity;
    assert_eq!(
        reply,
        json!({
            "action": "serverinfo",
            "responseid": "s1",
            "tag": 7,
            "serverinfo": {
                "domain": "",
                "name": "localhost",
                "mpsname": "localhost",
                "mpsport": 0,
                "port": 4443,
                "emailcheck": false,
                "domainauth": false,
                "serverTime": 0,
                // WAN-only, high-quality desktop, no CIRA, second factors, passkeys, and
                // the server's own certificate.
                "features": 0x8002_1601u32,
                "features2": 0x80,
                "languages": ["en"],
                "tlshash": hex_upper(&identity.web.cert_hash),
                "agentCertHash": b64_at_dollar(&identity.agent_server.server_id),
                "https": true,
                "redirport": 0,
                "magenturl": "mc://localhost:4443",
                "domainsuffix": "",
                "certExpire": reply["serverinfo"]["certExpire"],
                "product": "ironmesh",
                "version": env!("CARGO_PKG_VERSION"),
                "startTime": w.state.started_ms,
            }
        })
    );

    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "userinfo", "responseid": "u1" })
        )
        .await,
        json!({
            "action": "userinfo",
            "responseid": "u1",
            "userinfo": user_view(&w.alice, json!({
                w.office.id.clone(): { "rights": ALICE_RIGHTS },
            })),
        })
    );

    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "ping", "responseid": "p1", "tag": "x" })
        )
        .await,
        json!({ "action": "pong", "responseid": "p1", "tag": "x" })
    );
    assert_eq!(
        one(&mut alice, json!({ "action": "ping" })).await,
        json!({ "action": "pong" })
    );
}

// ---------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn users_lists_every_account_with_its_memberships() {
    let w = World::new().await;
    let manager_user = w.add_manager().await;
    let mut manager = w.session(&manager_user).await;
    let office = w.office.id.clone();
    let lab = w.lab.id.clone();
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "users", "responseid": "l" })
        )
        .await,
        json!({
            "action": "users",
            "responseid": "l",
            "users": [
                user_view(&w.admin, json!({
                    lab: { "rights": FULL },
                    office.clone(): { "rights": FULL },
                })),
                user_view(&w.alice, json!({ office.clone(): { "rights": ALICE_RIGHTS } })),
                user_view(&w.bob, json!({ office: { "rights": 0 } })),
                user_view(&manager_user, json!({})),
            ],
        })
    );
    let mut alice = w.session(&w.alice).await;
    assert_eq!(
        one(&mut alice, json!({ "action": "users" })).await,
        refused("users", "Access denied")
    );
}

#[tokio::test]
async fn account_lifecycle() {
    let mut w = World::new().await;
    let mut manager = w.session(&w.add_manager().await).await;

    assert_eq!(
        one(
            &mut manager,
            json!({
                "action": "adduser", "responseid": "a",
                "username": "Carol", "pass": "carol-password",
                "email": "carol@example.com", "emailVerified": true,
                "realname": "Carol C", "resetNextLogin": true,
            })
        )
        .await,
        json!({ "action": "adduser", "responseid": "a", "result": "ok" })
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "adduser", "username": "carol", "pass": "another-password" })
        )
        .await,
        refused("adduser", "User already exists")
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "adduser", "username": "dave", "pass": "short" })
        )
        .await,
        refused("adduser", "Password too short: at least 8 characters")
    );
    assert_eq!(
        one(
            &mut manager,
            json!({
                "action": "adduser",
                "username": "dave",
                "pass": "dave-password",
                "email": "dave",
            })
        )
        .await,
        refused("adduser", "Invalid email")
    );
    assert_eq!(
        one(&mut manager, json!({
            "action": "adduser",
            "username": "~dave",
            "pass": "dave-password",
        })).await,
        refused(
            "adduser",
            "Invalid username: 1-64 characters, no spaces, quotes, commas or slashes, not starting with ~"
        )
    );
    // Nobody grants site rights they do not hold.
    assert_eq!(
        one(
            &mut manager,
            json!({
                "action": "adduser",
                "username": "dave",
                "pass": "dave-password",
                "siteadmin": SiteRights::SERVER_BACKUP,
            })
        )
        .await,
        refused("adduser", "Access denied")
    );
    // New accounts may not create device groups (the server's default policy): they get
    // NO_NEW_GROUPS on top of the rights asked for...
    assert_eq!(
        one(
            &mut manager,
            json!({
                "action": "adduser",
                "username": "erin",
                "pass": "erin-password",
                "siteadmin": SiteRights::MANAGE_USERS,
            })
        )
        .await,
        json!({ "action": "adduser", "result": "ok" })
    );
    assert_eq!(
        listed_user(&mut manager, "user//erin").await["siteadmin"],
        json!(SiteRights::MANAGE_USERS | SiteRights::NO_NEW_GROUPS)
    );
    // ...except full administrators.
    let mut admin = w.session(&w.admin).await;
    assert_eq!(
        one(
            &mut admin,
            json!({
                "action": "adduser",
                "username": "root",
                "pass": "root-password",
                "siteadmin": SiteRights::FULL,
            })
        )
        .await,
        json!({ "action": "adduser", "result": "ok" })
    );
    assert_eq!(
        listed_user(&mut admin, "user//root").await["siteadmin"],
        json!(SiteRights::FULL)
    );

    let carol = w.domain().actor("user//carol").await.unwrap().unwrap().user;
    assert_eq!(
        listed_user(&mut manager, "user//carol").await,
        json!({
            "_id": "user//carol",
            "name": "Carol",
            "creation": carol.created_ms / 1000,
            "siteadmin": SiteRights::NO_NEW_GROUPS,
            "passchange": carol.password_changed_ms / 1000,
            "email": "carol@example.com",
            "emailVerified": true,
            "realname": "Carol C",
            "resetNextLogin": true,
        })
    );

    assert_eq!(
        one(
            &mut manager,
            json!({
                "action": "edituser", "userid": "carol", "realname": "Caroline",
                "email": "", "resetNextLogin": false, "siteadmin": SiteRights::MANAGE_USERS,
            })
        )
        .await,
        ok("edituser")
    );
    // Editing sets the site rights asked for: the policy applies to new accounts only.
    // MeshCentral's console names the account in `id`.
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "edituser", "id": "user//carol", "emailVerified": false })
        )
        .await,
        ok("edituser")
    );
    assert_eq!(
        listed_user(&mut manager, "user//carol").await,
        json!({
            "_id": "user//carol",
            "name": "Carol",
            "creation": carol.created_ms / 1000,
            "siteadmin": SiteRights::MANAGE_USERS,
            "passchange": carol.password_changed_ms / 1000,
            "realname": "Caroline",
        })
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "edituser", "userid": "manager", "siteadmin": 0 })
        )
        .await,
        refused("edituser", "You cannot change your own site rights")
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "edituser", "userid": "admin", "realname": "x" })
        )
        .await,
        refused("edituser", "Access denied")
    );
    assert_eq!(
        one(
            &mut manager,
            json!({
                "action": "edituser",
                "userid": "carol",
                "siteadmin": SiteRights::SERVER_UPDATE,
            })
        )
        .await,
        refused("edituser", "Access denied")
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "edituser", "userid": "nobody", "realname": "x" })
        )
        .await,
        refused("edituser", "User does not exists")
    );

    // A password reset ends every way into the account the old password opened: its
    // login tokens and browser sessions, and (through the event) its open sessions.
    let carol_actor = w.domain().actor("user//carol").await.unwrap().unwrap();
    let (carol_token, carol_token_pass) = w
        .domain()
        .create_login_token(&carol_actor, "ci", 0)
        .await
        .unwrap();
    let carol_cookie = w
        .state
        .auth
        .create_web_session(&carol_actor.user)
        .await
        .unwrap();
    w.published();
    assert_eq!(
        one(
            &mut manager,
            json!({
                "action": "changeuserpass",
                "userid": "user//carol",
                "pass": "carol-new-password",
            })
        )
        .await,
        ok("changeuserpass")
    );
    let login = w
        .domain()
        .check_login("carol", "carol-new-password", None)
        .await
        .unwrap();
    assert_eq!(login.map(|u| u.id).ok().as_deref(), Some("user//carol"));
    let login = w
        .domain()
        .check_login(&carol_token.token_user, &carol_token_pass, None)
        .await
        .unwrap();
    assert!(login.is_err(), "the login token still signs in");
    assert!(w
        .domain()
        .web_session_user(&carol_cookie)
        .await
        .unwrap()
        .is_none());
    let published = w.published();
    assert_eq!(published.len(), 1, "{published:?}");
    let changed = &published[0];
    assert_eq!(
        changed.to_json(),
        json!({
            "etype": "user",
            "action": "accountchange",
            "msg": "Password of Carol changed",
            "time": iso_time(changed.time_ms),
            "userid": "user//manager",
            "username": "manager",
            "remoteaddr": "127.0.0.1",
        })
    );
    assert_eq!(changed.targets, ["*users", "user//carol"]);
    assert!(changed.persist);
    // Every session of hers ends (the manager's session is not hers: none is kept).
    assert_eq!(
        changed.ends_sessions,
        Some(EndSessions {
            user_id: "user//carol".into(),
            keep: None,
            reason: "password changed: sign in again",
        })
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "changeuserpass", "id": "carol", "pass": "carol-third-password" })
        )
        .await,
        ok("changeuserpass")
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "changeuserpass", "userid": "carol", "pass": "short" })
        )
        .await,
        refused(
            "changeuserpass",
            "Password too short: at least 8 characters"
        )
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "changeuserpass", "userid": "admin", "pass": "admin-new-password" })
        )
        .await,
        refused("changeuserpass", "Access denied")
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "changeuserpass", "userid": "nobody", "pass": "long-enough" })
        )
        .await,
        refused("changeuserpass", "User does not exists")
    );

    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "deleteuser", "userid": "manager" })
        )
        .await,
        refused("deleteuser", "You cannot remove your own account")
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "deleteuser", "userid": "user//admin" })
        )
        .await,
        refused("deleteuser", "Access denied")
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "deleteuser", "userid": "carol", "responseid": "d" })
        )
        .await,
        json!({ "action": "deleteuser", "responseid": "d", "result": "ok" })
    );
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "deleteuser", "userid": "carol" })
        )
        .await,
        refused("deleteuser", "User does not exists")
    );
    assert!(w.domain().actor("user//carol").await.unwrap().is_none());
}

/// `changepassword`: a user changes their own password, proving they know the current
/// one. Every other way into the account ends (login tokens, other browser sessions,
/// `auth=` tokens issued before, other open sessions); the session it came from stays.
#[tokio::test]
async fn changepassword_changes_the_callers_own_password() {
    let mut w = World::new().await;
    let mut alice = w.session(&w.alice).await;
    // What the old password opened: a login token, this console's browser session and
    // another one, an `auth=` token, and another console.
    let (token, token_pass) = w
        .domain()
        .create_login_token(&alice.actor, "ci", 0)
        .await
        .unwrap();
    let this_cookie = w.state.auth.create_web_session(&w.alice).await.unwrap();
    let other_cookie = w.state.auth.create_web_session(&w.alice).await.unwrap();
    alice.web_cookie = Some(this_cookie.clone());
    let old_auth = one(&mut alice, json!({ "action": "authcookie" })).await["cookie"]
        .as_str()
        .unwrap()
        .to_string();
    let other_console = w.session(&w.alice).await;
    // Bob's token is not touched.
    let bob_actor = actor(w.domain(), &w.bob).await;
    let (bob_token, bob_token_pass) = w
        .domain()
        .create_login_token(&bob_actor, "ci", 0)
        .await
        .unwrap();
    let changed_ms = |w: &World| {
        let domain = w.domain().clone();
        async move {
            domain
                .actor("user//alice")
                .await
                .unwrap()
                .unwrap()
                .user
                .password_changed_ms
        }
    };
    let before = changed_ms(&w).await;
    w.published();

    // Refusals, which change nothing.
    let change = |old: &str, new: &str| json!({ "action": "changepassword", "oldpass": old, "newpass": new });
    for (request, result) in [
        (
            json!({ "action": "changepassword", "newpass": "alice-new-password" }),
            "Missing field: oldpass",
        ),
        (
            json!({ "action": "changepassword", "oldpass": "alice-password" }),
            "Missing field: newpass",
        ),
        (change("alice-password", ""), "Missing field: newpass"),
        (
            json!({ "action": "changepassword", "oldpass": 1, "newpass": "alice-new-password" }),
            "Field oldpass must be a string",
        ),
        (
            change("wrong-password", "alice-new-password"),
            "Incorrect current password",
        ),
        (
            change("alice-password", "alice-password"),
            "The new password must differ from the current one",
        ),
        (
            change("alice-password", "short"),
            "Password too short: at least 8 characters",
        ),
    ] {
        assert_eq!(
            one(&mut alice, request.clone()).await,
            refused("changepassword", result),
            "{request}"
        );
    }
    assert!(w.published().is_empty());
    assert_eq!(changed_ms(&w).await, before);
    let login = w
        .domain()
        .check_login("alice", "alice-password", None)
        .await
        .unwrap();
    assert_eq!(login.map(|u| u.id).ok().as_deref(), Some("user//alice"));

    // The change.
    let mut request = change("alice-password", "alice-new-password");
    request["responseid"] = "p".into();
    assert_eq!(
        one(&mut alice, request).await,
        json!({ "action": "changepassword", "responseid": "p", "result": "ok" })
    );
    let after = changed_ms(&w).await;
    assert!(after > before);
    for (password, works) in [("alice-new-password", true), ("alice-password", false)] {
        let login = w
            .domain()
            .check_login("alice", password, None)
            .await
            .unwrap();
        assert_eq!(login.is_ok(), works, "{password}");
    }
    for (user, password, works) in [
        (&token.token_user, &token_pass, false),
        (&bob_token.token_user, &bob_token_pass, true),
    ] {
        let login = w.domain().check_login(user, password, None).await.unwrap();
        assert_eq!(login.is_ok(), works, "{user}");
    }
    // Browser sessions: this console's stays, the other one is gone.
    let session_user = |cookie: &str| {
        let domain = w.domain().clone();
        let cookie = cookie.to_string();
        async move {
            domain
                .web_session_user(&cookie)
                .await
                .unwrap()
                .map(|u| u.id)
        }
    };
    assert_eq!(
        session_user(&this_cookie).await.as_deref(),
        Some("user//alice")
    );
    assert_eq!(session_user(&other_cookie).await, None);
    // `auth=` tokens issued before the change open nothing; new ones do.
    let with_token = |token: String| Credentials {
        auth_token: Some(token),
        ..Default::default()
    };
    assert!(w
        .state
        .auth
        .authenticate(&with_token(old_auth), &alice.client)
        .await
        .is_err());
    // This console stays signed in, the other one ends.
    assert_eq!(alice.credentials_ms, after);
    assert!(!ended(&alice).await);
    assert!(ended(&other_console).await);
    let new_auth = one(&mut alice, json!({ "action": "authcookie" })).await["cookie"]
        .as_str()
        .unwrap()
        .to_string();
    let signed_in = w
        .state
        .auth
        .authenticate(&with_token(new_auth), &alice.client)
        .await
        .unwrap();
    assert_eq!(signed_in.user.id, "user//alice");
    // Announced: the event ends her other sessions, not this one.
    let published = w.published();
    assert_eq!(published.len(), 1, "{published:?}");
    let event = &published[0];
    assert_eq!(
        event.to_json(),
        json!({
            "etype": "user",
            "action": "accountchange",
            "msg": "Password of alice changed",
            "time": iso_time(event.time_ms),
            "userid": "user//alice",
            "username": "alice",
            "remoteaddr": "127.0.0.1",
        })
    );
    assert_eq!(event.targets, ["*users", "user//alice"]);
    assert!(event.persist);
    assert_eq!(
        event.ends_sessions,
        Some(EndSessions {
            user_id: "user//alice".into(),
            keep: Some(alice.session_id.clone()),
            reason: "password changed: sign in again",
        })
    );
    assert_eq!(
        one(&mut alice, json!({ "action": "userinfo" })).await["userinfo"]["passchange"],
        after / 1000
    );

    // `changeuserpass` on one's own account keeps the session it came from too.
    let mut manager = w.session(&w.add_manager().await).await;
    w.published();
    assert_eq!(
        one(
            &mut manager,
            json!({
                "action": "changeuserpass",
                "userid": "manager",
                "pass": "manager-new-password",
            })
        )
        .await,
        ok("changeuserpass")
    );
    assert!(!ended(&manager).await);
    let published = w.published();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        published[0].ends_sessions,
        Some(EndSessions {
            user_id: "user//manager".into(),
            keep: Some(manager.session_id.clone()),
            reason: "password changed: sign in again",
        })
    );
}

/// New accounts get NO_NEW_GROUPS unless the configuration says
/// `new_users_create_groups = true` (`AppState::new` applies it to the domain); full
/// administrators are never limited.
#[tokio::test]
async fn new_users_create_groups_as_configured() {
    for configured in [None, Some(true)] {
        let dir = tempfile::tempdir().unwrap();
        let state = test_state_with(dir.path(), |config| {
            if let Some(allowed) = configured {
                config.new_users_create_groups = allowed;
            }
        })
        .await;
        let allowed = configured == Some(true);
        assert_eq!(state.config.new_users_create_groups, allowed);
        let limit = if allowed {
            0
        } else {
            SiteRights::NO_NEW_GROUPS
        };
        let root = add_user(&state.domain, "root", SiteRights::FULL).await;
        assert_eq!(root.site_rights, SiteRights::FULL);
        let carol = add_user(&state.domain, "carol", SiteRights::MANAGE_USERS).await;
        assert_eq!(carol.site_rights, SiteRights::MANAGE_USERS | limit);
        // Accounts made with `adduser` too.
        let mut carol = session(&state, &carol).await;
        assert_eq!(
            one(
                &mut carol,
                json!({ "action": "adduser", "username": "dave", "pass": "dave-password" })
            )
            .await,
            json!({ "action": "adduser", "result": "ok" })
        );
        let dave = state.domain.actor("user//dave").await.unwrap().unwrap();
        assert_eq!(dave.user.site_rights, limit, "{configured:?}");
        let reply = one(
            &mut carol,
            json!({ "action": "createmesh", "meshname": "Mine" }),
        )
        .await;
        if allowed {
            assert_eq!(reply["result"], "ok", "{reply}");
        } else {
            assert_eq!(reply, refused("createmesh", "Access denied"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Device groups
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn meshes_lists_the_groups_the_caller_sees() {
    let w = World::new().await;
    let office_links = json!({
        "user//admin": { "name": "admin", "rights": FULL },
        "user//alice": { "name": "alice", "rights": ALICE_RIGHTS },
        "user//bob": { "name": "bob", "rights": 0 },
    });
    let mut alice = w.session(&w.alice).await;
    assert_eq!(
        one(&mut alice, json!({ "action": "meshes", "responseid": "m" })).await,
        json!({
            "action": "meshes",
            "responseid": "m",
            "meshes": [group_view(&w.office, office_links.clone())],
        })
    );
    let mut admin = w.session(&w.admin).await;
    assert_eq!(
        one(&mut admin, json!({ "action": "meshes" })).await,
        json!({
            "action": "meshes",
            "meshes": [
                group_view(&w.office, office_links),
                group_view(&w.lab, json!({ "user//admin": { "name": "admin", "rights": FULL } })),
            ],
        })
    );
    let mut manager = w.session(&w.add_manager().await).await;
    assert_eq!(
        one(&mut manager, json!({ "action": "meshes" })).await,
        json!({ "action": "meshes", "meshes": [] })
    );
}

#[tokio::test]
async fn group_lifecycle() {
    let w = World::new().await;
    w.add_manager().await;
    let mut alice = w.session(&w.alice).await;
    let mut admin = w.session(&w.admin).await;

    // A new account may not create groups (NO_NEW_GROUPS, the default policy) until an
    // administrator lifts it.
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "createmesh", "meshname": "Home", "desc": "at home" }),
        )
        .await,
        refused("createmesh", "Access denied")
    );
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "edituser", "userid": "alice", "siteadmin": 0 })
        )
        .await,
        ok("edituser")
    );
    let created = one(
        &mut alice,
        json!({ "action": "createmesh", "meshname": "Home", "desc": "at home", "responseid": "c" }),
    )
    .await;
    let home_id = created["meshid"].as_str().unwrap().to_string();
    assert!(home_id.starts_with("mesh//"), "{created}");
    assert_eq!(
        created,
        json!({
            "action": "createmesh",
            "responseid": "c",
            "result": "ok",
            "meshid": home_id,
            "links": { "user//alice": { "name": "alice", "rights": FULL } },
        })
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "createmesh", "meshname": "Other", "meshtype": 1 })
        )
        .await,
        refused(
            "createmesh",
            "Unsupported group type: ironmesh hosts agent groups (meshtype 2)"
        )
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "createmesh", "meshname": "  " })
        )
        .await,
        refused(
            "createmesh",
            "Invalid group name: 1-128 printable characters"
        )
    );

    // editmesh: with an id, `meshname` is the new name; with a name, `newname` is.
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "editmesh",
                "meshid": w.office.id,
                "meshname": "Front office",
                "desc": "ground floor",
            })
        )
        .await,
        ok("editmesh")
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "editmesh", "meshname": "Front office", "newname": "Office 2" })
        )
        .await,
        ok("editmesh")
    );
    let meshes = one(&mut alice, json!({ "action": "meshes" })).await;
    let office = meshes["meshes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["_id"] == w.office.id.as_str())
        .unwrap();
    assert_eq!(
        (&office["name"], &office["desc"]),
        (&json!("Office 2"), &json!("ground floor"))
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "editmesh", "meshid": w.office.id, "meshname": "" })
        )
        .await,
        refused("editmesh", "Invalid group name: 1-128 printable characters")
    );
    let mut bob = w.session(&w.bob).await;
    assert_eq!(
        one(
            &mut bob,
            json!({ "action": "editmesh", "meshid": w.office.id, "desc": "mine" })
        )
        .await,
        refused("editmesh", "Access denied")
    );

    // addmeshuser: by name or id, one or several; nobody grants rights they do not hold.
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "addmeshuser",
                "meshid": w.office.id,
                "userid": "manager",
                "meshadmin": MeshRights::REMOTE_CONTROL,
                "responseid": "a",
            })
        )
        .await,
        json!({
            "action": "addmeshuser",
            "responseid": "a",
            "result": "Added user manager",
            "success": 1,
            "failed": 0,
        })
    );
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "addmeshuser",
                "meshname": "Office 2",
                "usernames": ["manager", "user//bob"],
                "meshadmin": MeshRights::EDIT_MESH,
            })
        )
        .await,
        json!({
            "action": "addmeshuser",
            "result": "Added users manager, bob",
            "success": 2,
            "failed": 0,
        })
    );
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "addmeshuser",
                "meshid": w.office.id,
                "usernames": ["manager", "ghost", "a/b"],
            })
        )
        .await,
        json!({
            "action": "addmeshuser",
            "result": "Added users manager; Invalid user name a/b; Unknown user user//ghost",
            "success": 1,
            "failed": 2,
        })
    );
    // Nothing added is still not a `failed: true` refusal: `failed` counts the names.
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "addmeshuser", "meshid": w.office.id, "usernames": ["ghost"] })
        )
        .await,
        json!({
            "action": "addmeshuser",
            "result": "Nothing done",
            "success": 0,
            "failed": 1,
        })
    );
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "addmeshuser",
                "meshid": w.office.id,
                "userid": "bob",
                "meshadmin": MeshRights::AGENT_CONSOLE,
            })
        )
        .await,
        refused("addmeshuser", "Access denied")
    );
    assert_eq!(
        one(
            &mut bob,
            json!({ "action": "addmeshuser", "meshid": w.office.id, "userid": "manager" })
        )
        .await,
        refused("addmeshuser", "Access denied")
    );
    // Nobody changes a member who holds rights they do not hold themselves (the group's
    // full administrator here), whatever the new rights.
    let not_yours = "Cannot change the rights of user//admin: they hold rights you do not hold";
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "addmeshuser", "meshid": w.office.id, "userid": "admin" })
        )
        .await,
        json!({
            "action": "addmeshuser",
            "result": format!("Nothing done: {not_yours}"),
            "success": 0,
            "failed": 1,
        })
    );
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "addmeshuser",
                "meshid": w.office.id,
                "usernames": ["bob", "admin"],
                "meshadmin": MeshRights::EDIT_MESH,
            })
        )
        .await,
        json!({
            "action": "addmeshuser",
            "result": format!("Added users bob; {not_yours}"),
            "success": 1,
            "failed": 1,
        })
    );
    // Restrictions ("no terminal", "only own events") are not rights: a member whose only
    // extra bits are restrictions can be changed.
    assert_eq!(
        one(
            &mut admin,
            json!({
                "action": "addmeshuser",
                "meshid": w.office.id,
                "userid": "bob",
                "meshadmin": MeshRights::EDIT_MESH | MeshRights::NO_TERMINAL | MeshRights::LIMIT_EVENTS,
            }),
        )
        .await["success"],
        1
    );
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "addmeshuser",
                "meshid": w.office.id,
                "userid": "bob",
                "meshadmin": MeshRights::EDIT_MESH,
            })
        )
        .await,
        json!({ "action": "addmeshuser", "result": "Added user bob", "success": 1, "failed": 0 })
    );
    let members = w.domain().group_members(&w.office.id).await.unwrap();
    let rights: HashMap<&str, u32> = members
        .iter()
        .map(|m| (m.user_id.as_str(), m.rights))
        .collect();
    assert_eq!(
        rights,
        HashMap::from([
            ("user//admin", FULL),
            ("user//alice", ALICE_RIGHTS),
            ("user//bob", MeshRights::EDIT_MESH),
            ("user//manager", 0),
        ])
    );

    // removemeshuser: not of a member who holds rights the caller does not hold.
    let cannot_remove = "Cannot remove a member who holds rights you do not hold";
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "removemeshuser", "meshid": w.office.id, "userid": "admin" })
        )
        .await,
        refused("removemeshuser", cannot_remove)
    );
    assert_eq!(
        one(
            &mut admin,
            json!({
                "action": "addmeshuser",
                "meshid": w.office.id,
                "userid": "manager",
                "meshadmin": MeshRights::REMOTE_CONTROL | MeshRights::AGENT_CONSOLE,
            }),
        )
        .await["success"],
        1
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "removemeshuser", "meshid": w.office.id, "userid": "manager" })
        )
        .await,
        refused("removemeshuser", cannot_remove)
    );
    // Restrictions do not count.
    assert_eq!(
        one(
            &mut admin,
            json!({
                "action": "addmeshuser",
                "meshid": w.office.id,
                "userid": "manager",
                "meshadmin": MeshRights::REMOTE_CONTROL | MeshRights::NO_DESKTOP,
            }),
        )
        .await["success"],
        1
    );
    // The refused removals removed nobody.
    let members = w.domain().group_members(&w.office.id).await.unwrap();
    assert_eq!(members.len(), 4, "{members:?}");
    assert!(members
        .iter()
        .any(|m| m.user_id == "user//admin" && m.rights == FULL));
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "removemeshuser", "meshid": w.office.id, "userid": "manager" })
        )
        .await,
        ok("removemeshuser")
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "removemeshuser", "meshid": w.office.id, "userid": "manager" })
        )
        .await,
        refused("removemeshuser", "User not in group")
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "removemeshuser", "meshid": w.office.id, "userid": "a/b" })
        )
        .await,
        refused("removemeshuser", "User does not exists")
    );

    // deletemesh needs full rights on the group.
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "deletemesh", "meshid": w.office.id })
        )
        .await,
        refused("deletemesh", "Access denied")
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "deletemesh", "meshname": "Home", "responseid": "d" })
        )
        .await,
        json!({ "action": "deletemesh", "responseid": "d", "result": "ok" })
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "deletemesh", "meshid": home_id })
        )
        .await,
        refused("deletemesh", "Unknown device group")
    );
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "deletemesh", "meshid": w.lab.id })
        )
        .await,
        ok("deletemesh")
    );
    // Its device went with it.
    let nodes = one(&mut admin, json!({ "action": "nodes" })).await;
    assert_eq!(nodes["nodes"].as_object().unwrap().len(), 1, "{nodes}");
    assert!(!w.domain().device_exists(&w.lab_pc.id).await.unwrap());
}

/// Two groups of one name cannot be told apart by name.
#[tokio::test]
async fn ambiguous_group_names_are_refused() {
    let w = World::new().await;
    let mut admin = w.session(&w.admin).await;
    let created = one(
        &mut admin,
        json!({ "action": "createmesh", "meshname": "Office" }),
    )
    .await;
    assert_eq!(created["result"], "ok", "{created}");
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "editmesh", "meshname": "Office", "desc": "x" })
        )
        .await,
        refused("editmesh", "Duplicate device groups found")
    );
    // Alice sees one of them only: for her the name is unique.
    let mut alice = w.session(&w.alice).await;
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "editmesh", "meshname": "Office", "desc": "x" })
        )
        .await,
        ok("editmesh")
    );
}

/// Rights are reloaded before every request, as the socket loop does.
#[tokio::test]
async fn rights_granted_meanwhile_apply_to_the_next_request() {
    let w = World::new().await;
    let mut bob = w.session(&w.bob).await;
    let lab_nodes = json!({ "action": "nodes", "meshid": w.lab.id });
    assert_eq!(
        one(&mut bob, lab_nodes.clone()).await,
        refused("nodes", "Invalid group id")
    );
    let mut admin = w.session(&w.admin).await;
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "addmeshuser", "meshid": w.lab.id, "userid": "bob" })
        )
        .await,
        json!({ "action": "addmeshuser", "result": "Added user bob", "success": 1, "failed": 0 })
    );
    assert_eq!(
        one(&mut bob, lab_nodes).await,
        json!({ "action": "nodes", "nodes": { w.lab.id.clone(): [node_view(&w.lab_pc)] } })
    );
}

// ---------------------------------------------------------------------------------------
// User groups
// ---------------------------------------------------------------------------------------

/// A user group as a user group administrator sees it in `usergroups`.
fn user_group_view(id: &str, name: &str, desc: &str, links: Value) -> Value {
    json!({ "type": "ugrp", "_id": id, "name": name, "desc": desc, "domain": "", "links": links })
}

/// A user in a user group holds the group's rights on a device group, on top of their
/// own, and only while they are in it and the link exists.
#[tokio::test]
async fn user_groups_grant_their_rights_to_their_users() {
    let mut w = World::new().await;
    let mut admin = w.session(&w.admin).await;
    let mut alice = w.session(&w.alice).await;
    let mut bob = w.session(&w.bob).await;
    assert_eq!(
        one(&mut admin, json!({ "action": "usergroups" })).await,
        json!({ "action": "usergroups", "ugroups": null })
    );
    // Refusals: the USERGROUPS site right, then the fields.
    for request in [
        json!({ "action": "createusergroup", "name": "x" }),
        json!({ "action": "deleteusergroup", "ugrpid": "ugrp//x" }),
        json!({ "action": "addusertousergroup", "ugrpid": "ugrp//x", "usernames": ["bob"] }),
        json!({ "action": "removeuserfromusergroup", "ugrpid": "ugrp//x", "userid": "bob" }),
    ] {
        let action = request["action"].as_str().unwrap().to_string();
        assert_eq!(
            one(&mut alice, request).await,
            refused(&action, "Permission denied")
        );
    }
    for (request, result) in [
        (json!({ "action": "createusergroup" }), "Invalid group name"),
        (
            json!({ "action": "createusergroup", "name": "x".repeat(65) }),
            "Invalid group name",
        ),
        (
            json!({ "action": "createusergroup", "name": "x", "desc": 5 }),
            "Invalid group description",
        ),
        (json!({ "action": "deleteusergroup" }), "Invalid group id"),
        (
            json!({ "action": "deleteusergroup", "ugrpid": w.office.id }),
            "Invalid domain id",
        ),
        (
            json!({ "action": "deleteusergroup", "ugrpid": "ugrp//nosuch" }),
            "Unknown device group",
        ),
        (
            json!({ "action": "addusertousergroup", "usernames": ["bob"] }),
            "Invalid groupid",
        ),
        (
            json!({ "action": "addusertousergroup", "ugrpid": "ugrp//nosuch" }),
            "Invalid usernames",
        ),
        (
            json!({ "action": "addusertousergroup", "ugrpid": "ugrp//nosuch", "usernames": ["bob"] }),
            "Invalid groupid",
        ),
        (
            json!({ "action": "removeuserfromusergroup", "ugrpid": "ugrp//nosuch" }),
            "Invalid userid",
        ),
    ] {
        let action = request["action"].as_str().unwrap().to_string();
        assert_eq!(one(&mut admin, request).await, refused(&action, result));
    }

    let created = one(
        &mut admin,
        json!({ "action": "createusergroup", "name": "Lab staff", "desc": "on call", "responseid": "c" }),
    )
    .await;
    let ugrp = created["ugrpid"].as_str().unwrap().to_string();
    assert!(ugrp.starts_with("ugrp//") && ugrp.len() == 70, "{created}");
    assert_eq!(
        created,
        json!({ "action": "createusergroup", "responseid": "c", "result": "ok", "ugrpid": ugrp, "links": {} })
    );
    let published = w.published();
    assert!(
        published.iter().any(|e| e.action == "createusergroup"
            && e.extra["ugrpid"] == ugrp.as_str()
            && e.user_id.as_deref() == Some("user//admin")),
        "{published:?}"
    );

    // Bob cannot see Lab; through the user group he can, with its rights.
    let lab_nodes = json!({ "action": "nodes", "meshid": w.lab.id });
    assert_eq!(
        one(&mut bob, lab_nodes.clone()).await,
        refused("nodes", "Invalid group id")
    );
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "addusertousergroup", "ugrpid": ugrp, "usernames": ["bob", "nobody"] })
        )
        .await,
        json!({ "action": "addusertousergroup", "result": "ok", "added": 1, "failed": 1 })
    );
    let key = ugrp.trim_start_matches("ugrp//").to_string();
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "addmeshuser", "meshid": w.lab.id, "userid": ugrp,
                    "meshadmin": MeshRights::REMOTE_CONTROL })
        )
        .await,
        json!({ "action": "addmeshuser", "result": format!("Added user {key}"), "success": 1, "failed": 0 })
    );
    assert_eq!(
        one(&mut bob, lab_nodes.clone()).await,
        json!({ "action": "nodes", "nodes": { w.lab.id.clone(): [node_view(&w.lab_pc)] } })
    );
    // Union with his own rights: none of his own on Office, remote control through the
    // group (given by `usernames`, as meshctrl's addusertodevicegroup sends it).
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "addmeshuser", "meshid": w.office.id, "usernames": [ugrp],
                    "meshadmin": MeshRights::REMOTE_COMMAND })
        )
        .await["success"],
        1
    );
    let rights = |a: &Actor, g: &DeviceGroup| a.group_rights(&g.id).map(|r| r.0);
    let bob_actor = actor(w.domain(), &w.bob).await;
    assert_eq!(
        rights(&bob_actor, &w.office),
        Some(MeshRights::REMOTE_COMMAND)
    );
    assert_eq!(rights(&bob_actor, &w.lab), Some(MeshRights::REMOTE_CONTROL));
    let alice_actor = actor(w.domain(), &w.alice).await;
    assert_eq!(rights(&alice_actor, &w.office), Some(ALICE_RIGHTS));
    assert!(w
        .domain()
        .users_with_access(&w.lab_pc.id)
        .await
        .unwrap()
        .contains(&w.bob.id));

    // Lists: the user group with its links; others see its name only; `meshes` and
    // `users` show the links; bob now sees Lab, Office first (creation order).
    let links = json!({
        "user//bob": { "userid": "user//bob", "name": "bob", "rights": 1 },
        w.office.id.clone(): { "name": "Office", "rights": MeshRights::REMOTE_COMMAND },
        w.lab.id.clone(): { "name": "Lab", "rights": MeshRights::REMOTE_CONTROL },
    });
    assert_eq!(
        one(&mut admin, json!({ "action": "usergroups" })).await,
        json!({ "action": "usergroups", "ugroups": {
            ugrp.clone(): user_group_view(&ugrp, "Lab staff", "on call", links),
        } })
    );
    assert_eq!(
        one(&mut alice, json!({ "action": "usergroups" })).await,
        json!({ "action": "usergroups", "ugroups": { ugrp.clone(): { "name": "Lab staff" } } })
    );
    let meshes = one(&mut bob, json!({ "action": "meshes" })).await;
    let names: Vec<&str> = meshes["meshes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Office", "Lab"], "{meshes}");
    assert_eq!(
        meshes["meshes"][1]["links"][&ugrp],
        json!({ "name": "Lab staff", "rights": MeshRights::REMOTE_CONTROL })
    );
    assert_eq!(
        listed_user(&mut admin, &w.bob.id).await["links"],
        json!({ w.office.id.clone(): { "rights": 0 }, ugrp.clone(): { "rights": 1 } })
    );

    // Out of the user group: Lab is gone again.
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "removeuserfromusergroup", "ugrpid": ugrp, "userid": "user//bob" })
        )
        .await,
        ok("removeuserfromusergroup")
    );
    assert_eq!(
        one(&mut bob, lab_nodes.clone()).await,
        refused("nodes", "Invalid group id")
    );
    // Back in, then the link goes: the same.
    one(
        &mut admin,
        json!({ "action": "addusertousergroup", "ugrpid": ugrp, "usernames": ["bob"] }),
    )
    .await;
    assert!(one(&mut bob, lab_nodes.clone())
        .await
        .get("failed")
        .is_none());
    let unlink = json!({ "action": "removemeshuser", "meshid": w.lab.id, "userid": ugrp });
    assert_eq!(one(&mut admin, unlink.clone()).await, ok("removemeshuser"));
    assert_eq!(
        one(&mut admin, unlink).await,
        refused("removemeshuser", "User not in group")
    );
    assert_eq!(
        one(&mut bob, lab_nodes).await,
        refused("nodes", "Invalid group id")
    );
    // A group manager cannot hand a user group rights they do not hold.
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "addmeshuser", "meshid": w.office.id, "userid": ugrp,
                    "meshadmin": MeshRights::FULL })
        )
        .await,
        refused("addmeshuser", "Access denied")
    );
    // Removing the group takes what it granted.
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "deleteusergroup", "ugrpid": ugrp })
        )
        .await,
        json!({ "action": "deleteusergroup", "result": "ok", "ugrpid": ugrp })
    );
    let bob_actor = actor(w.domain(), &w.bob).await;
    assert_eq!(rights(&bob_actor, &w.office), Some(0));
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "deleteusergroup", "ugrpid": ugrp })
        )
        .await,
        refused("deleteusergroup", "Unknown device group")
    );
}

/// `wssessioncount` counts open sessions per user for user managers only; `userbroadcast`
/// reaches every open session (or one user's) as a notification.
#[tokio::test]
async fn session_counts_and_broadcasts() {
    use crate::live::consoles::{Outbox, OUTBOX_LIMIT};
    let w = World::new().await;
    let mut admin = w.session(&w.admin).await;
    let mut alice = w.session(&w.alice).await;
    let mut readers = Vec::new();
    for (s, user) in [(&admin, &w.admin), (&alice, &w.alice)] {
        let (outbox, reader) = Outbox::new(OUTBOX_LIMIT);
        w.state.consoles.register(&s.session_id, &user.id, outbox);
        readers.push(reader);
    }
    let (outbox, second_alice) = Outbox::new(OUTBOX_LIMIT);
    w.state
        .consoles
        .register("user//alice/second", &w.alice.id, outbox);
    readers.push(second_alice);
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "wssessioncount", "responseid": "n" })
        )
        .await,
        json!({ "action": "wssessioncount", "responseid": "n",
                "wssessions": { "user//admin": 1, "user//alice": 2 } })
    );
    assert_eq!(
        one(&mut alice, json!({ "action": "wssessioncount" })).await,
        json!({ "action": "wssessioncount", "wssessions": {} })
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "userbroadcast", "msg": "hi" })
        )
        .await,
        refused("userbroadcast", "Permission denied")
    );
    for bad in [
        json!({ "action": "userbroadcast" }),
        json!({ "action": "userbroadcast", "msg": "x".repeat(513) }),
    ] {
        assert_eq!(
            one(&mut admin, bad).await,
            refused("userbroadcast", "Message is too long")
        );
    }
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "userbroadcast", "msg": "Maintenance at noon" })
        )
        .await,
        ok("userbroadcast")
    );
    let text = |m: axum::extract::ws::Message| -> Value {
        match m {
            axum::extract::ws::Message::Text(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("not text: {other:?}"),
        }
    };
    for reader in readers.iter_mut() {
        let got = text(reader.next().await.unwrap());
        assert_eq!(
            (
                &got["action"],
                &got["type"],
                &got["value"],
                &got["title"],
                &got["tag"]
            ),
            (
                &json!("msg"),
                &json!("notify"),
                &json!("Maintenance at noon"),
                &json!("admin"),
                &json!("broadcast")
            ),
            "{got}"
        );
    }
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "userbroadcast", "msg": "only you", "userid": "alice" })
        )
        .await,
        ok("userbroadcast")
    );
    assert_eq!(text(readers[1].next().await.unwrap())["value"], "only you");
    assert_eq!(text(readers[2].next().await.unwrap())["value"], "only you");
    use futures_util::FutureExt;
    assert!(
        readers[0].next().now_or_never().is_none(),
        "admin got a message for alice"
    );
}

// ---------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn nodes_lists_visible_devices_by_group() {
    let w = World::new().await;
    let mut bob = w.session(&w.bob).await;
    assert_eq!(
        one(&mut bob, json!({ "action": "nodes", "responseid": "n" })).await,
        json!({
            "action": "nodes",
            "responseid": "n",
            "nodes": { w.office.id.clone(): [node_view(&w.office_pc)] },
        })
    );
    let mut admin = w.session(&w.admin).await;
    assert_eq!(
        one(&mut admin, json!({ "action": "nodes" })).await,
        json!({
            "action": "nodes",
            "nodes": {
                w.office.id.clone(): [node_view(&w.office_pc)],
                w.lab.id.clone(): [node_view(&w.lab_pc)],
            },
        })
    );
    assert_eq!(
        one(&mut admin, json!({ "action": "nodes", "meshname": "Lab" })).await,
        json!({ "action": "nodes", "nodes": { w.lab.id.clone(): [node_view(&w.lab_pc)] } })
    );
    // A group asked for by id is listed even when it has no devices.
    let created = one(
        &mut admin,
        json!({ "action": "createmesh", "meshname": "Empty" }),
    )
    .await;
    let empty = created["meshid"].clone();
    assert_eq!(
        one(&mut admin, json!({ "action": "nodes", "meshid": empty })).await,
        json!({ "action": "nodes", "nodes": { empty.as_str().unwrap(): [] } })
    );

    // An agent connected: live state.
    let _agent = w.connect(&w.office_pc);
    let mut online = node_view(&w.office_pc);
    online["conn"] = 1.into();
    online["pwr"] = 1.into();
    online["agct"] = CONNECTED_MS.into();
    assert_eq!(
        one(
            &mut bob,
            json!({ "action": "nodes", "meshid": w.office.id })
        )
        .await,
        json!({ "action": "nodes", "nodes": { w.office.id.clone(): [online] } })
    );
}

#[tokio::test]
async fn device_details() {
    let w = World::new().await;
    let pc = &w.office_pc;
    let mut alice = w.session(&w.alice).await;

    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "lastconnect", "nodeid": pc.id, "responseid": "l" })
        )
        .await,
        json!({
            "action": "lastconnect",
            "responseid": "l",
            "nodeid": pc.id,
            "time": pc.last_connect_ms,
            "addr": DEVICE_ADDR,
        })
    );

    // System and network details need DEVICE_DETAILS on the device's group, which alice
    // lacks: refused, though she sees the device (invisible devices read as unknown).
    let details = [
        json!({ "action": "getnetworkinfo", "nodeid": pc.id }),
        json!({ "action": "getsysinfo", "nodeid": pc.id }),
    ];
    for request in &details {
        let action = request["action"].as_str().unwrap();
        assert_eq!(
            one(&mut alice, request.clone()).await,
            refused(action, "Access denied")
        );
    }
    let with_details = ALICE_RIGHTS | MeshRights::DEVICE_DETAILS;
    let mut admin = w.session(&w.admin).await;
    assert_eq!(
        one(
            &mut admin,
            json!({
                "action": "addmeshuser",
                "meshid": w.office.id,
                "userid": "alice",
                "meshadmin": with_details,
            })
        )
        .await,
        json!({ "action": "addmeshuser", "result": "Added user alice", "success": 1, "failed": 0 })
    );

    // Before the agent reported anything.
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "getnetworkinfo", "nodeid": pc.id })
        )
        .await,
        json!({
            "action": "getnetworkinfo",
            "nodeid": pc.id,
            "updateTime": pc.last_connect_ms,
            "netif": null,
            "netif2": null,
        })
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "getsysinfo", "nodeid": pc.id })
        )
        .await,
        json!({ "action": "getsysinfo", "noinfo": true, "nodeid": pc.id, "result": "Invalid device id" })
    );

    // After its reports.
    let netif2 = json!({ "eth0": [{ "address": "10.0.0.5", "family": "IPv4" }] });
    let domain = w.domain();
    let netinfo = json!({ "action": "netinfo", "netif2": netif2 }).to_string();
    domain
        .store_agent_report(
            &pc.id,
            DeviceReport::NetInfo,
            &netinfo,
            None,
            Default::default(),
        )
        .await
        .unwrap();
    let hardware = json!({ "identifiers": { "cpu_name": "Test CPU" } });
    let sysinfo = json!({ "action": "sysinfo", "data": { "hardware": hardware, "hash": "abc" } });
    domain
        .store_agent_report(
            &pc.id,
            DeviceReport::SysInfo,
            &sysinfo.to_string(),
            None,
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "getnetworkinfo", "nodeid": id_key(&pc.id), "responseid": "n" })
        )
        .await,
        json!({
            "action": "getnetworkinfo",
            "responseid": "n",
            "nodeid": pc.id,
            "updateTime": pc.last_connect_ms,
            "netif": null,
            "netif2": netif2,
        })
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "getsysinfo", "nodeid": pc.id })
        )
        .await,
        json!({
            "action": "getsysinfo",
            "hardware": hardware,
            "hash": "abc",
            "nodeid": pc.id,
            "rights": with_details,
        })
    );
    // What the agent reported stays out of reach without the right.
    let mut bob = w.session(&w.bob).await;
    for request in &details {
        let action = request["action"].as_str().unwrap();
        assert_eq!(
            one(&mut bob, request.clone()).await,
            refused(action, "Access denied")
        );
    }
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "getsysinfo", "nodeid": pc.id, "nodeinfo": true })
        )
        .await,
        json!({
            "action": "getsysinfo",
            "hardware": hardware,
            "hash": "abc",
            "node": node_view(pc),
            "nodeid": pc.id,
            "rights": FULL,
        })
    );

    // getDeviceDetails (meshctrl listdevices --details): JSON text in `data`, each device
    // with its group's name; the network report only with DEVICE_DETAILS.
    let details = |reply: Value| -> Vec<Value> {
        assert_eq!(reply["action"], "getDeviceDetails", "{reply}");
        serde_json::from_str(reply["data"].as_str().expect("data is text")).unwrap()
    };
    let for_alice = details(
        one(
            &mut alice,
            json!({ "action": "getDeviceDetails", "type": "json", "nodeids": [pc.id] }),
        )
        .await,
    );
    assert_eq!(for_alice.len(), 1);
    assert_eq!(for_alice[0]["node"]["_id"], pc.id.as_str());
    assert_eq!(for_alice[0]["node"]["groupname"], "Office");
    assert_eq!(for_alice[0]["net"]["netif2"], netif2);
    let for_bob = details(one(&mut bob, json!({ "action": "getDeviceDetails" })).await);
    let bobs_pc = for_bob.iter().find(|d| d["node"]["_id"] == pc.id.as_str());
    assert!(
        bobs_pc.is_some_and(|d| d.get("net").is_none()),
        "bob sees the device without its network report: {for_bob:?}"
    );
    assert_eq!(
        one(
            &mut bob,
            json!({ "action": "getDeviceDetails", "type": "csv" })
        )
        .await,
        refused("getDeviceDetails", "Unsupported type csv: only json")
    );
}

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

/// Stored events, newest first (ties in the same millisecond by id, as the store orders).
fn newest_first(events: &[Arc<Event>]) -> Vec<Value> {
    let mut stored: Vec<&Arc<Event>> = events.iter().filter(|e| e.persist).collect();
    stored.sort_by(|a, b| (b.time_ms, &b.id).cmp(&(a.time_ms, &a.id)));
    stored.iter().map(|e| e.to_json()).collect()
}

/// Whether a user who is not a full administrator may list a stored event: they caused it,
/// it is for them (a target), it is for user managers (`*users`) and they manage accounts,
/// or it is of one of their groups (where their rights have LIMIT_EVENTS and are not full,
/// only if they caused it or no user did).
fn listable(
    e: &Event,
    user_id: &str,
    manages_users: bool,
    memberships: &HashMap<String, u32>,
) -> bool {
    let caused = e.user_id.as_deref() == Some(user_id);
    let for_them = e.targets.iter().any(|t| t == user_id);
    let for_managers = manages_users && e.targets.iter().any(|t| t == "*users");
    let of_their_group = e
        .group_id
        .as_ref()
        .and_then(|g| memberships.get(g))
        .is_some_and(|&rights| {
            !MeshRights(rights).restricted(MeshRights::LIMIT_EVENTS) || e.user_id.is_none()
        });
    caused || for_them || for_managers || of_their_group
}

/// The `msg` of each listed event.
fn messages(reply: &Value) -> Vec<&str> {
    reply["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events: {reply}"))
        .iter()
        .map(|e| e["msg"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn events_lists_what_the_caller_may_see() {
    let mut w = World::new().await;
    let manager_user = w.add_manager().await;
    let mut admin = w.session(&w.admin).await;
    admin.client.user_agent = Some("meshctrl/1.1".into());
    let mut alice = w.session(&w.alice).await;
    let mut bob = w.session(&w.bob).await;
    let mut manager = w.session(&manager_user).await;

    // Alice creates a group once the administrator lifts NO_NEW_GROUPS.
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "edituser", "userid": "alice", "siteadmin": 0 })
        )
        .await,
        ok("edituser")
    );
    let created = one(
        &mut alice,
        json!({ "action": "createmesh", "meshname": "Home" }),
    )
    .await;
    let home = created["meshid"].as_str().unwrap().to_string();
    // Kiosk: alice may run commands there, and sees there only the events she caused or
    // no user caused (LIMIT_EVENTS); bob sees all of them.
    let created = one(
        &mut admin,
        json!({ "action": "createmesh", "meshname": "Kiosk" }),
    )
    .await;
    let kiosk_id = created["meshid"].as_str().unwrap().to_string();
    for (user, rights) in [
        (
            "alice",
            MeshRights::LIMIT_EVENTS | MeshRights::REMOTE_COMMAND,
        ),
        ("bob", 0),
    ] {
        let reply = one(
            &mut admin,
            json!({ "action": "addmeshuser", "meshid": kiosk_id, "userid": user, "meshadmin": rights }),
        )
        .await;
        assert_eq!(reply["success"], 1, "{reply}");
    }
    let kiosk = w.domain().group_by_id(&kiosk_id).await.unwrap().unwrap();
    let kiosk_pc = register_device(w.domain(), &kiosk, "kiosk-pc").await;
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "editmesh", "meshid": kiosk_id, "desc": "lobby" })
        )
        .await,
        ok("editmesh")
    );
    // Alice runs a command on a device of each group.
    let _office_agent = w.connect(&w.office_pc);
    let _kiosk_agent = w.connect(&kiosk_pc);
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "runcommands",
                "nodeids": [w.office_pc.id, kiosk_pc.id],
                "cmds": "uptime",
            })
        )
        .await,
        json!({ "action": "runcommands", "result": "OK" })
    );
    // Agents connecting and leaving, as the agent endpoint announces them.
    let online = LiveState {
        conn: 1,
        pwr: 1,
        connected_ms: CONNECTED_MS,
    };
    w.domain().announce_connection(&w.office_pc, online).await;
    w.domain()
        .announce_connection(&w.lab_pc, LiveState::default())
        .await;
    // A failed sign-in, from elsewhere: for user managers.
    let stranger = Client {
        ip: "192.0.2.7".parse().unwrap(),
        user_agent: Some("curl/8.0".into()),
    };
    let wrong = Credentials {
        user: Some("alice".into()),
        pass: Some("wrong-password".into()),
        ..Default::default()
    };
    assert!(w.state.auth.authenticate(&wrong, &stranger).await.is_err());

    let published = w.published();
    let persisted = newest_first(&published);
    assert!(persisted.len() >= 20, "{persisted:?}");
    let stored_one = |action: &str, msg: &str| -> Value {
        let found: Vec<&Arc<Event>> = published
            .iter()
            .filter(|e| e.persist && e.action == action && e.msg == msg)
            .collect();
        assert_eq!(found.len(), 1, "{action} {msg}: {found:?}");
        found[0].to_json()
    };

    // Full administrators: everything.
    assert_eq!(
        one(&mut admin, json!({ "action": "events", "responseid": "e" })).await,
        json!({ "action": "events", "responseid": "e", "events": persisted })
    );
    assert_eq!(
        one(&mut admin, json!({ "action": "events", "limit": 2 })).await,
        json!({ "action": "events", "events": persisted[..2] })
    );

    // What the bodies carry: where the user was and with which client (when known), and
    // `outcome` on failures only.
    let failed_sign_in = stored_one(
        "login",
        "Failed sign-in as alice: invalid user name or password",
    );
    assert_eq!(
        failed_sign_in,
        json!({
            "etype": "user",
            "action": "login",
            "msg": "Failed sign-in as alice: invalid user name or password",
            "time": failed_sign_in["time"],
            "method": "password",
            "remoteaddr": "192.0.2.7",
            "useragent": "curl/8.0",
            "outcome": "failure",
        })
    );
    let with_outcome: Vec<&Value> = persisted
        .iter()
        .filter(|e| e.get("outcome").is_some())
        .collect();
    assert_eq!(with_outcome, [&failed_sign_in]);
    let changed = stored_one("meshchange", "Device group Kiosk changed");
    assert_eq!(
        (
            &changed["userid"],
            &changed["remoteaddr"],
            &changed["useragent"]
        ),
        (
            &json!("user//admin"),
            &json!("127.0.0.1"),
            &json!("meshctrl/1.1")
        ),
        "{changed}"
    );
    let home_created = stored_one("createmesh", "Device group Home created");
    assert_eq!(home_created["remoteaddr"], "127.0.0.1", "{home_created}");
    assert!(home_created.get("useragent").is_none(), "{home_created}");

    // Everyone else: by the rules of [`listable`], which the live filter
    // (`Actor::may_see`) applies to the same events.
    for (session, manages_users) in [(&mut alice, false), (&mut bob, false), (&mut manager, true)] {
        let me = session.actor.user.id.clone();
        let actor = w.domain().actor(&me).await.unwrap().unwrap();
        let expected: Vec<Arc<Event>> = published
            .iter()
            .filter(|e| listable(e, &me, manages_users, &actor.memberships))
            .cloned()
            .collect();
        assert_eq!(
            one(session, json!({ "action": "events" })).await,
            json!({ "action": "events", "events": newest_first(&expected) }),
            "{me}"
        );
        for e in published.iter().filter(|e| e.persist) {
            assert_eq!(
                actor.may_see(e),
                listable(e, &me, manages_users, &actor.memberships),
                "{me} live and stored disagree on {}",
                e.to_json()
            );
        }
    }
    // The rules at work.
    let alice_sees = one(&mut alice, json!({ "action": "events" })).await;
    let seen = messages(&alice_sees);
    for msg in [
        // Her own account (a target), though no user caused it.
        "Account alice created",
        // About her account, caused by the administrator.
        "Account alice changed",
        // Of her groups.
        "Device group Home created",
        "Added device office-pc",
        "Agent connected from 10.0.0.5:40000",
        // In Kiosk (LIMIT_EVENTS): what is for her, what she caused, what no user caused.
        "Added user alice to device group Kiosk",
        "Added device kiosk-pc",
        "Running commands",
    ] {
        assert!(seen.contains(&msg), "alice misses {msg:?}: {seen:?}");
    }
    for msg in [
        // In Kiosk, caused by the administrator, not for her.
        "Device group Kiosk created",
        "Added user bob to device group Kiosk",
        "Device group Kiosk changed",
        // Lab is not hers.
        "Device group Lab created",
        "Added device lab-pc",
        "Agent disconnected",
        // Other accounts, and sign-ins (for user managers).
        "Account bob created",
        "Failed sign-in as alice: invalid user name or password",
    ] {
        assert!(!seen.contains(&msg), "alice sees {msg:?}");
    }
    assert_eq!(seen.iter().filter(|m| **m == "Running commands").count(), 2);
    let bob_sees = one(&mut bob, json!({ "action": "events" })).await;
    let seen = messages(&bob_sees);
    for msg in [
        "Device group Kiosk created",
        "Added user alice to device group Kiosk",
        "Device group Kiosk changed",
        "Running commands",
    ] {
        assert!(seen.contains(&msg), "bob misses {msg:?}: {seen:?}");
    }
    for msg in [
        "Account alice created",
        "Device group Home created",
        "Failed sign-in as alice: invalid user name or password",
    ] {
        assert!(!seen.contains(&msg), "bob sees {msg:?}");
    }
    let manager_sees = one(&mut manager, json!({ "action": "events" })).await;
    let mut seen = messages(&manager_sees);
    seen.sort();
    assert_eq!(
        seen,
        [
            "Account admin created",
            "Account alice changed",
            "Account alice created",
            "Account bob created",
            "Account manager created",
            "Failed sign-in as alice: invalid user name or password",
        ]
    );

    // Of one device: seen through its group (alice has no LIMIT_EVENTS in Office).
    let office_pc = &w.office_pc;
    let of_pc: Vec<Arc<Event>> = published
        .iter()
        .filter(|e| e.node_id.as_deref() == Some(office_pc.id.as_str()))
        .cloned()
        .collect();
    let listed = one(
        &mut alice,
        json!({ "action": "events", "nodeid": office_pc.id }),
    )
    .await;
    assert_eq!(
        listed,
        json!({ "action": "events", "nodeid": office_pc.id, "events": newest_first(&of_pc) })
    );
    let body = |action: &str| -> Value {
        listed["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} in {listed}"))
    };
    let added = body("addnode");
    assert_eq!(
        added,
        json!({
            "etype": "node",
            "action": "addnode",
            "msg": "Added device office-pc",
            "time": added["time"],
            "meshid": w.office.id,
            "nodeid": office_pc.id,
            "node": node_view(office_pc),
        })
    );
    let ran = body("runcommands");
    assert_eq!(
        ran,
        json!({
            "etype": "node",
            "action": "runcommands",
            "msg": "Running commands",
            "time": ran["time"],
            "userid": "user//alice",
            "username": "alice",
            "meshid": w.office.id,
            "nodeid": office_pc.id,
            "remoteaddr": "127.0.0.1",
            "cmds": "uptime",
            "cmdType": 3,
            "runAsUser": 0,
            "msgid": 24,
            "domain": "",
        })
    );
    let connected = body("nodeconnect");
    assert_eq!(
        connected,
        json!({
            "etype": "node",
            "action": "nodeconnect",
            "msg": "Agent connected from 10.0.0.5:40000",
            "time": connected["time"],
            "meshid": w.office.id,
            "nodeid": office_pc.id,
            "conn": 1,
            "pwr": 1,
            "ct": CONNECTED_MS,
        })
    );
    assert_eq!(listed["events"].as_array().unwrap().len(), 3, "{listed}");
    let disconnected = stored_one("nodeconnect", "Agent disconnected");
    assert_eq!(
        (
            &disconnected["nodeid"],
            &disconnected["conn"],
            &disconnected["ct"]
        ),
        (&json!(w.lab_pc.id), &json!(0), &json!(0)),
        "{disconnected}"
    );

    // Of one group (`meshid`): still only what the caller may see.
    let of_kiosk: Vec<Arc<Event>> = published
        .iter()
        .filter(|e| e.group_id.as_deref() == Some(kiosk_id.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "events", "meshid": kiosk_id })
        )
        .await,
        json!({ "action": "events", "events": newest_first(&of_kiosk) })
    );
    let alice_kiosk = one(
        &mut alice,
        json!({ "action": "events", "meshid": id_key(&kiosk_id) }),
    )
    .await;
    let mut seen = messages(&alice_kiosk);
    seen.sort();
    assert_eq!(
        seen,
        [
            "Added device kiosk-pc",
            "Added user alice to device group Kiosk",
            "Running commands",
        ]
    );
    // A group she cannot see lists as one that does not exist: empty.
    let unknown_mesh = format!("mesh//{}", b64_at_dollar(&[7u8; 48]));
    for group in [&w.lab.id, &unknown_mesh] {
        assert_eq!(
            one(&mut alice, json!({ "action": "events", "meshid": group })).await,
            json!({ "action": "events", "events": [] })
        );
    }
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "events", "meshid": "node//x" })
        )
        .await,
        refused("events", "Invalid group id")
    );

    // Of one action (`filter`).
    let runs: Vec<Arc<Event>> = published
        .iter()
        .filter(|e| e.action == "runcommands")
        .cloned()
        .collect();
    assert_eq!(runs.len(), 2);
    for session in [&mut admin, &mut bob] {
        assert_eq!(
            one(
                session,
                json!({ "action": "events", "filter": "runcommands" })
            )
            .await,
            json!({ "action": "events", "events": newest_first(&runs) })
        );
    }
    assert_eq!(
        one(
            &mut manager,
            json!({ "action": "events", "filter": "runcommands" })
        )
        .await,
        json!({ "action": "events", "events": [] })
    );

    // Of a time span: `since` inclusive, `until` exclusive (Unix ms).
    let home_event = published
        .iter()
        .find(|e| e.action == "createmesh" && e.group_id.as_deref() == Some(home.as_str()))
        .unwrap();
    let t = home_event.time_ms;
    let last = published.iter().map(|e| e.time_ms).max().unwrap();
    let within = |from: Option<i64>, to: Option<i64>| -> Vec<Value> {
        let chosen: Vec<Arc<Event>> = published
            .iter()
            .filter(|e| from.is_none_or(|f| e.time_ms >= f) && to.is_none_or(|u| e.time_ms < u))
            .cloned()
            .collect();
        newest_first(&chosen)
    };
    for (since, until) in [
        (Some(t), None),
        (None, Some(t)),
        (Some(t), Some(last)),
        (Some(last + 1), None),
    ] {
        let mut request = json!({ "action": "events" });
        if let Some(since) = since {
            request["since"] = since.into();
        }
        if let Some(until) = until {
            request["until"] = until.into();
        }
        let events = within(since, until);
        assert_eq!(
            one(&mut admin, request.clone()).await,
            json!({ "action": "events", "events": events }),
            "{request}"
        );
        if since == Some(t) && until.is_none() {
            assert!(!events.is_empty() && events.len() < persisted.len());
        }
    }

    // Of one user (`user` is what meshctrl sends): the events they caused, and those about
    // them (their account, their memberships).
    let by_alice: Vec<Arc<Event>> = published
        .iter()
        .filter(|e| {
            e.user_id.as_deref() == Some("user//alice")
                || e.targets.iter().any(|t| t == "user//alice")
        })
        .cloned()
        .collect();
    assert_eq!(by_alice.len(), 7, "{by_alice:?}");
    for request in [
        json!({ "action": "events", "userid": "alice" }),
        json!({ "action": "events", "user": "user//alice" }),
    ] {
        assert_eq!(
            one(&mut admin, request).await,
            json!({ "action": "events", "events": newest_first(&by_alice) })
        );
    }

    // The log keeps who each event is for: user ids and `*users` (the group is its own
    // column), and its hash chain holds.
    let stored = w
        .domain()
        .stored_events(&EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let targets_of = |action: &str, msg: &str| -> Vec<&str> {
        stored
            .iter()
            .filter(|r| r.action == action && r.msg == msg)
            .map(|r| r.targets.as_str())
            .collect()
    };
    assert_eq!(
        targets_of("runcommands", "Running commands"),
        [",user//alice,", ",user//alice,"]
    );
    assert_eq!(
        targets_of(
            "login",
            "Failed sign-in as alice: invalid user name or password"
        ),
        [",*users,"]
    );
    assert_eq!(
        targets_of("accountcreate", "Account bob created"),
        [",*users,user//bob,"]
    );
    assert_eq!(
        targets_of("addmeshuser", "Added user bob to device group Kiosk"),
        [",user//bob,"]
    );
    let chain = w.domain().verify_audit_chain().await.unwrap();
    assert_eq!(chain.broken, None, "{chain}");
    assert_eq!(chain.checked, stored.len() as u64);
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn authcookie_seals_both_relay_tokens() {
    let w = World::new().await;
    let mut alice = w.session(&w.alice).await;
    let before = now_ms();
    let reply = one(
        &mut alice,
        json!({ "action": "authcookie", "responseid": "c" }),
    )
    .await;
    let after = now_ms();
    let mut fields: Vec<&str> = reply
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["action", "cookie", "rcookie", "responseid"],
        "{reply}"
    );
    assert_eq!(reply["action"], "authcookie");
    assert_eq!(reply["responseid"], "c");
    let now = now_ms() / 1000;
    let open = |field: &str| {
        let mut payload = w
            .state
            .auth
            .tokens
            .open(reply[field].as_str().unwrap(), 60, now)
            .unwrap();
        let time = payload.remove("time").unwrap().as_i64().unwrap();
        assert!((now - 5..=now).contains(&time));
        Value::Object(payload)
    };
    // `auth=` carries when it was issued (Unix ms): a later password change voids it.
    let mut cookie = open("cookie");
    let ms = cookie["ms"].as_i64().unwrap();
    assert!((before..=after).contains(&ms), "{cookie}");
    cookie["ms"] = 0.into();
    assert_eq!(
        cookie,
        json!({ "userid": "user//alice", "domainid": "", "ip": "127.0.0.1", "ms": 0 })
    );
    let signed_in = w
        .state
        .auth
        .authenticate(
            &Credentials {
                auth_token: Some(reply["cookie"].as_str().unwrap().into()),
                ..Default::default()
            },
            &alice.client,
        )
        .await
        .unwrap();
    assert_eq!(
        (signed_in.user.id.as_str(), signed_in.method),
        ("user//alice", Method::AuthToken)
    );
    let rcookie = open("rcookie");
    let x = rcookie["x"].as_str().unwrap();
    assert!(
        x.len() == 12 && x.bytes().all(|b| b.is_ascii_hexdigit()),
        "{rcookie}"
    );
    assert_eq!(rcookie, json!({ "ruserid": "user//alice", "x": x }));
}

#[tokio::test]
async fn login_tokens() {
    let w = World::new().await;
    let mut alice = w.session(&w.alice).await;
    let before = now_ms();
    let created = one(
        &mut alice,
        json!({ "action": "createLoginToken", "name": " ci ", "expire": 60, "responseid": "t" }),
    )
    .await;
    let token_user = created["tokenUser"].as_str().unwrap().to_string();
    let password = created["tokenPass"].as_str().unwrap().to_string();
    let created_ms = created["created"].as_i64().unwrap();
    assert!(token_user.starts_with("~t:"), "{created}");
    assert!((before..=now_ms()).contains(&created_ms));
    assert_eq!(
        created,
        json!({
            "action": "createLoginToken",
            "responseid": "t",
            "name": "ci",
            "tokenUser": token_user,
            "tokenPass": password,
            "created": created_ms,
            "expire": created_ms + 60 * 60_000,
        })
    );
    let login = w
        .domain()
        .check_login(&token_user, &password, None)
        .await
        .unwrap();
    assert_eq!(login.map(|u| u.id).ok().as_deref(), Some("user//alice"));

    // Listed in order of creation: a later millisecond.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let forever = one(
        &mut alice,
        json!({ "action": "createLoginToken", "name": "forever" }),
    )
    .await;
    assert_eq!(forever["expire"], 0, "{forever}");
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "createLoginToken", "name": " " })
        )
        .await,
        refused("createLoginToken", "Invalid token name: 1-64 characters")
    );

    let ci = json!({
        "name": "ci",
        "tokenUser": token_user,
        "created": created_ms,
        "expire": created_ms + 3_600_000,
    });
    let forever_listed = json!({
        "name": "forever",
        "tokenUser": forever["tokenUser"],
        "created": forever["created"],
        "expire": 0,
    });
    let listed = one(
        &mut alice,
        json!({ "action": "loginTokens", "responseid": "l" }),
    )
    .await;
    assert_eq!(
        listed,
        json!({
            "action": "loginTokens",
            "responseid": "l",
            "loginTokens": [
                ci,
                forever_listed,
            ],
        })
    );
    // Others' tokens are neither listed nor removable.
    let mut bob = w.session(&w.bob).await;
    assert_eq!(
        one(
            &mut bob,
            json!({ "action": "loginTokens", "remove": [token_user] })
        )
        .await,
        json!({ "action": "loginTokens", "loginTokens": [] })
    );
    // `remove` names tokens by their user (`~t:…`).
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "loginTokens", "remove": [token_user] })
        )
        .await,
        json!({
            "action": "loginTokens",
            "loginTokens": [
                forever_listed,
            ],
        })
    );
    let login = w
        .domain()
        .check_login(&token_user, &password, None)
        .await
        .unwrap();
    assert!(login.is_err());
}

// ---------------------------------------------------------------------------------------
// Requests to agents: msg, runcommands
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn msg_reaches_a_connected_agent_only() {
    let w = World::new().await;
    let pc = &w.office_pc;
    let mut alice = w.session(&w.alice).await;
    let ps = json!({ "action": "msg", "type": "ps", "nodeid": pc.id, "responseid": "m" });
    assert_eq!(
        one(&mut alice, ps.clone()).await,
        json!({
            "action": "msg",
            "responseid": "m",
            "result": "Unable to route: device is offline",
            "failed": true,
        })
    );

    let mut agent = w.connect(pc);
    assert_eq!(
        one(&mut alice, ps).await,
        json!({ "action": "msg", "responseid": "m", "result": "OK" })
    );
    // Fields the server fills in cannot be forged.
    assert_eq!(
        sent(&mut agent),
        json!({
            "action": "msg",
            "type": "ps",
            "responseid": "m",
            "sessionid": alice.session_id,
            "rights": ALICE_RIGHTS,
            "userid": "user//alice",
            "username": "alice",
            "remoteaddr": "127.0.0.1",
        })
    );
    assert!(call(
        &mut alice,
        json!({
            "action": "msg",
            "type": "ps",
            "nodeid": pc.id,
            "userid": "user//admin",
            "rights": FULL,
        })
    )
    .await
    .is_empty());
    let forged = sent(&mut agent);
    assert_eq!(
        (&forged["userid"], &forged["rights"]),
        (&json!("user//alice"), &json!(ALICE_RIGHTS))
    );

    // A tunnel request.
    let value = format!("*/meshrelay.ashx?p=1&nodeid={}&id=abc", pc.id);
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "msg",
                "type": "tunnel",
                "nodeid": pc.id,
                "value": value,
                "usage": 1,
            })
        )
        .await,
        json!({ "action": "msg", "result": "OK" })
    );
    assert_eq!(
        sent(&mut agent),
        json!({
            "action": "msg",
            "type": "tunnel",
            "value": value,
            "usage": 1,
            "servertlshash": hex_upper(&w.state.identity.web.cert_hash),
            "soptions": {},
            "userid": "user//alice",
            "username": "alice",
            "sessionid": alice.session_id,
            "rights": ALICE_RIGHTS,
            "consent": 0,
            "remoteaddr": "127.0.0.1",
        })
    );

    // Refusals, with nothing sent.
    let tunnel =
        |value: &str| json!({ "action": "msg", "type": "tunnel", "nodeid": pc.id, "value": value });
    for (request, result) in [
        (
            json!({ "action": "msg", "type": "console", "nodeid": pc.id, "value": "help" }),
            "Access denied",
        ),
        (
            tunnel("*/elsewhere.ashx?id=1"),
            "Invalid tunnel URL: expected */meshrelay.ashx?…",
        ),
        (
            tunnel("wss://host/meshrelay.ashx?id=1"),
            "Invalid tunnel URL: expected */meshrelay.ashx?…",
        ),
        (
            tunnel(&format!("*/meshrelay.ashx?id=1&nodeid={}", w.lab_pc.id)),
            "Invalid nodeid: the tunnel URL names another device",
        ),
        (
            json!({ "action": "msg", "type": "tunnel", "nodeid": pc.id }),
            "Missing field: value",
        ),
        (
            json!({ "action": "msg", "nodeid": pc.id }),
            "Missing field: type",
        ),
        (
            json!({ "action": "msg", "type": 1, "nodeid": pc.id }),
            "Field type must be a string",
        ),
        (
            json!({ "action": "msg", "type": "ps" }),
            "Missing field: nodeid",
        ),
    ] {
        assert_eq!(
            one(&mut alice, request.clone()).await,
            refused("msg", result),
            "{request}"
        );
    }
    // A terminal session on a device where terminals are forbidden.
    let mut admin = w.session(&w.admin).await;
    one(
        &mut admin,
        json!({
            "action": "addmeshuser",
            "meshid": w.office.id,
            "userid": "bob",
            "meshadmin": MeshRights::REMOTE_CONTROL | MeshRights::NO_TERMINAL,
        }),
    )
    .await;
    let mut bob = w.session(&w.bob).await;
    assert_eq!(
        one(&mut bob, tunnel("*/meshrelay.ashx?p=1&id=1")).await,
        refused("msg", "Access denied")
    );
    assert!(agent.try_recv().is_err());
}

#[tokio::test]
async fn runcommands_runs_on_connected_devices_the_caller_may_command() {
    let mut w = World::new().await;
    let pc = &w.office_pc.clone();
    let mut alice = w.session(&w.alice).await;
    w.published();
    let uptime =
        json!({ "action": "runcommands", "nodeids": [pc.id], "cmds": "uptime", "responseid": "r" });
    assert_eq!(
        one(&mut alice, uptime.clone()).await,
        json!({
            "action": "runcommands",
            "responseid": "r",
            "result": "Agent not connected",
            "failed": true,
        })
    );
    assert!(w.published().is_empty());

    let mut agent = w.connect(pc);
    assert_eq!(
        one(&mut alice, uptime).await,
        json!({ "action": "runcommands", "responseid": "r", "result": "OK" })
    );
    // Recorded in the audit trail, for her and the device's group.
    let ran = w.published();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(
        ran[0].to_json(),
        json!({
            "etype": "node",
            "action": "runcommands",
            "msg": "Running commands",
            "time": iso_time(ran[0].time_ms),
            "userid": "user//alice",
            "username": "alice",
            "meshid": w.office.id,
            "nodeid": pc.id,
            "remoteaddr": "127.0.0.1",
            "cmds": "uptime",
            "cmdType": 3,
            "runAsUser": 0,
            "msgid": 24,
            "domain": "",
        })
    );
    assert!(ran[0].persist);
    assert_eq!(ran[0].targets, [w.office.id.as_str(), "user//alice"]);
    // Type 0 (the device's shell) is sh on a Linux agent (id 6).
    assert_eq!(
        sent(&mut agent),
        json!({
            "action": "runcommands",
            "type": 3,
            "cmds": "uptime",
            "runAsUser": 0,
            "reply": false,
            "sessionid": alice.session_id,
            "responseid": "r",
        })
    );
    // With `reply`, the agent's output is the answer: nothing now.
    assert!(call(
        &mut alice,
        json!({
            "action": "runcommands",
            "nodeid": id_key(&pc.id),
            "cmds": "ls",
            "type": 4,
            "reply": true,
            "runAsUser": 7,
        })
    )
    .await
    .is_empty());
    assert_eq!(
        sent(&mut agent),
        json!({
            "action": "runcommands",
            "type": 4,
            "cmds": "ls",
            "runAsUser": 2,
            "reply": true,
            "sessionid": alice.session_id,
        })
    );
    let ran = w.published();
    assert_eq!(ran.len(), 1, "{ran:?}");
    let event = ran[0].to_json();
    assert_eq!(
        (&event["cmds"], &event["cmdType"], &event["runAsUser"]),
        (&json!("ls"), &json!(4), &json!(2)),
        "{event}"
    );
    let mut bob = w.session(&w.bob).await;
    assert_eq!(
        one(
            &mut bob,
            json!({ "action": "runcommands", "nodeid": pc.id, "cmds": "id" })
        )
        .await,
        refused("runcommands", "Access denied")
    );
    assert!(agent.try_recv().is_err());
    assert!(w.published().is_empty(), "a refusal was recorded as run");
}

/// Every device is checked before the command runs on any: one forbidden device refuses
/// the whole request, whatever its place in the list.
#[tokio::test]
async fn runcommands_with_a_forbidden_device_runs_nowhere() {
    let mut w = World::new().await;
    let admin_actor = actor(w.domain(), &w.admin).await;
    // Kiosk: alice sees it (and its device) but may not run commands there.
    let kiosk = create_group(w.domain(), &admin_actor, "Kiosk").await;
    add_member(
        w.domain(),
        &admin_actor,
        &kiosk,
        &w.alice,
        MeshRights::REMOTE_CONTROL,
    )
    .await;
    let kiosk_pc = register_device(w.domain(), &kiosk, "kiosk-pc").await;
    let mut office_agent = w.connect(&w.office_pc);
    let mut kiosk_agent = w.connect(&kiosk_pc);
    let mut lab_agent = w.connect(&w.lab_pc);

    let mut alice = w.session(&w.alice).await;
    for (ids, result) in [
        (vec![&w.office_pc.id, &kiosk_pc.id], "Access denied"),
        (vec![&kiosk_pc.id, &w.office_pc.id], "Access denied"),
        (vec![&w.office_pc.id, &w.lab_pc.id], "Invalid nodeid"),
        (vec![&w.lab_pc.id, &w.office_pc.id], "Invalid nodeid"),
    ] {
        let request = json!({ "action": "runcommands", "nodeids": ids, "cmds": "reboot" });
        assert_eq!(
            one(&mut alice, request.clone()).await,
            refused("runcommands", result),
            "{request}"
        );
    }
    // An offline device among them refuses the request too.
    let offline = register_device(w.domain(), &w.office, "office-laptop").await;
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "runcommands",
                "nodeids": [w.office_pc.id, offline.id],
                "cmds": "reboot",
            })
        )
        .await,
        refused("runcommands", "Agent not connected")
    );
    for agent in [&mut office_agent, &mut kiosk_agent, &mut lab_agent] {
        assert!(agent.try_recv().is_err(), "a command was sent");
    }
    // Nothing ran, so nothing is in the audit trail as run.
    let published = w.published();
    assert!(
        !published.iter().any(|e| e.action == "runcommands"),
        "{published:?}"
    );
    // The devices she may command, alone: the command runs and is recorded once per device.
    let mut office_laptop_agent = w.connect(&offline);
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "runcommands",
                "nodeids": [w.office_pc.id, offline.id],
                "cmds": "reboot",
            })
        )
        .await,
        json!({ "action": "runcommands", "result": "OK" })
    );
    for agent in [&mut office_agent, &mut office_laptop_agent] {
        assert_eq!(sent(agent)["cmds"], "reboot");
    }
    let ran: Vec<Option<String>> = w
        .published()
        .iter()
        .filter(|e| e.action == "runcommands")
        .map(|e| e.node_id.clone())
        .collect();
    assert_eq!(
        ran,
        [Some(w.office_pc.id.clone()), Some(offline.id.clone())]
    );
}

// ---------------------------------------------------------------------------------------
// Device lifecycle: changedevice, changeDeviceMesh, removedevices, adddeviceuser
// ---------------------------------------------------------------------------------------

/// The next thing the server sent to an agent: `Some(json)`, or `None` for a close.
fn next_to_agent(rx: &mut mpsc::Receiver<ToAgent>) -> Option<Value> {
    match rx.try_recv() {
        Ok(ToAgent::Json(text)) => Some(serde_json::from_str(&text).unwrap()),
        Ok(ToAgent::Close(_)) => None,
        Err(e) => panic!("nothing was sent to the agent: {e}"),
    }
}

/// The one device of `nodes` in the reply with this id.
fn listed_node(reply: &Value, id: &str) -> Option<Value> {
    reply["nodes"]
        .as_object()?
        .values()
        .flat_map(|list| list.as_array().cloned().unwrap_or_default())
        .find(|n| n["_id"] == id)
}

#[tokio::test]
async fn changedevice_renames_describes_and_tags() {
    let mut w = World::new().await;
    let pc = w.office_pc.clone();
    let mut admin = w.session(&w.admin).await;
    w.published();
    let change = json!({
        "action": "changedevice",
        "nodeid": id_key(&pc.id),
        "name": " front-desk ",
        "desc": "By the <b>door</b>",
        "tags": "linux, ,kiosk,linux",
        "responseid": "c",
    });
    assert_eq!(
        one(&mut admin, change.clone()).await,
        json!({ "action": "changedevice", "responseid": "c", "result": "ok" })
    );
    let mut expected = node_view(&pc);
    expected["name"] = "front-desk".into();
    expected["desc"] = "By the <b>door</b>".into();
    expected["tags"] = json!(["kiosk", "linux"]);
    let nodes = one(&mut admin, json!({ "action": "nodes" })).await;
    assert_eq!(listed_node(&nodes, &pc.id), Some(expected.clone()));
    // Announced as MeshCentral announces it, to the group, the device and the caller.
    let events = w.published();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = events[0].to_json();
    assert_eq!(
        event,
        json!({
            "etype": "node",
            "action": "changenode",
            "msg": "Changed device front-desk from group Office: name, description, tags",
            "time": iso_time(events[0].time_ms),
            "userid": "user//admin",
            "username": "admin",
            "meshid": w.office.id,
            "nodeid": pc.id,
            "remoteaddr": "127.0.0.1",
            "node": expected,
            "msgid": 140,
            "msgArgs": ["front-desk", "Office", "name, description, tags"],
            "domain": "",
        })
    );
    assert!(events[0].persist);
    assert_eq!(events[0].targets, [w.office.id.as_str(), "user//admin"]);
    // The same again changes nothing and announces nothing; meshctrl's other fields (icon,
    // consent) and "" for no tags do.
    assert_eq!(one(&mut admin, change).await["result"], "ok");
    assert!(w.published().is_empty());
    let reply = one(
        &mut admin,
        json!({ "action": "changedevice", "nodeid": pc.id, "icon": 3, "consent": 8, "tags": "" }),
    )
    .await;
    assert_eq!(reply, ok("changedevice"));
    let events = w.published();
    assert_eq!(
        events[0].msg,
        "Changed device front-desk from group Office: icon, consent, tags"
    );
    let node = listed_node(&one(&mut admin, json!({ "action": "nodes" })).await, &pc.id).unwrap();
    assert_eq!((&node["icon"], &node["consent"]), (&json!(3), &json!(8)));
    assert!(node.get("tags").is_none(), "{node}");

    // Without MANAGE_COMPUTERS, on a device she may not see, on no device: MeshCentral's
    // one text for all three.
    let mut alice = w.session(&w.alice).await;
    let unknown = format!("node//{}", b64_at_dollar(&[7u8; 48]));
    for id in [&pc.id, &w.lab_pc.id, &unknown] {
        assert_eq!(
            one(
                &mut alice,
                json!({ "action": "changedevice", "nodeid": id, "name": "mine" })
            )
            .await,
            refused("changedevice", "Access Denied"),
            "{id}"
        );
    }
    // Malformed fields.
    for (request, result) in [
        (
            json!({ "action": "changedevice", "name": "x" }),
            "Invalid nodeid",
        ),
        (
            json!({ "action": "changedevice", "nodeid": "node/acme/abc", "name": "x" }),
            "Invalid nodeid",
        ),
        (
            json!({ "action": "changedevice", "nodeid": pc.id, "name": "" }),
            "Invalid device name: 1-256 printable characters",
        ),
        (
            json!({ "action": "changedevice", "nodeid": pc.id, "name": "a\u{7}b" }),
            "Invalid device name: 1-256 printable characters",
        ),
        (
            json!({ "action": "changedevice", "nodeid": pc.id, "name": 5 }),
            "Field name must be a string",
        ),
        (
            json!({ "action": "changedevice", "nodeid": pc.id, "desc": "d".repeat(1025) }),
            "Description too long: at most 1024 characters",
        ),
        (
            json!({ "action": "changedevice", "nodeid": pc.id, "icon": 9 }),
            "Invalid icon: 1 to 8",
        ),
        (
            json!({ "action": "changedevice", "nodeid": pc.id, "icon": "3" }),
            "Field icon must be a number from 0 to 4294967295",
        ),
        (
            json!({ "action": "changedevice", "nodeid": pc.id, "tags": 5 }),
            "Field tags must be a list of tags",
        ),
        (
            json!({ "action": "changedevice", "nodeid": pc.id, "tags": ["a", 5] }),
            "Field tags must be a list of tags",
        ),
    ] {
        assert_eq!(
            one(&mut admin, request.clone()).await,
            refused("changedevice", result),
            "{request}"
        );
    }
    assert!(w.published().is_empty(), "a refusal changed something");
}

#[tokio::test]
async fn changedevicemesh_moves_devices_between_groups() {
    let mut w = World::new().await;
    let pc = w.office_pc.clone();
    let admin_actor = actor(w.domain(), &w.admin).await;
    let annex = create_group(w.domain(), &admin_actor, "Annex").await;
    // Alice edits Office (the source) and manages Annex's devices (the target).
    add_member(
        w.domain(),
        &admin_actor,
        &annex,
        &w.alice,
        MeshRights::EDIT_MESH | MeshRights::MANAGE_COMPUTERS,
    )
    .await;
    let mut agent = w.connect(&pc);
    let mut alice = w.session(&w.alice).await;
    w.published();
    assert_eq!(
        call(
            &mut alice,
            json!({
                "action": "changeDeviceMesh",
                "nodeids": [id_key(&pc.id)],
                "meshname": "Annex",
                "responseid": "m",
            })
        )
        .await,
        [json!({ "action": "changeDeviceMesh", "responseid": "m", "result": "ok" })]
    );
    let nodes = one(&mut alice, json!({ "action": "nodes" })).await;
    let mut moved = node_view(&pc);
    moved["meshid"] = annex.id.clone().into();
    moved["conn"] = 1.into();
    moved["pwr"] = 1.into();
    moved["agct"] = CONNECTED_MS.into();
    assert_eq!(nodes["nodes"][&annex.id], json!([moved]));
    // The agent stays connected, now of Annex; nothing was sent to it.
    assert_eq!(w.state.agents.get(&pc.id).unwrap().group_id, annex.id);
    assert!(agent.try_recv().is_err());
    let events = w.published();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].to_json(),
        json!({
            "etype": "node",
            "action": "nodemeshchange",
            "msg": "Moved device office-pc to group Annex",
            "time": iso_time(events[0].time_ms),
            "userid": "user//alice",
            "username": "alice",
            "meshid": annex.id,
            "nodeid": pc.id,
            "remoteaddr": "127.0.0.1",
            "node": moved,
            "oldMeshId": w.office.id,
            "newMeshId": annex.id,
            "msgid": 85,
            "msgArgs": ["office-pc", "Annex"],
            "domain": "",
        })
    );
    assert_eq!(events[0].targets, [annex.id.as_str(), w.office.id.as_str()]);
    // Bob, member of Office only, no longer sees it.
    let mut bob = w.session(&w.bob).await;
    assert_eq!(
        listed_node(&one(&mut bob, json!({ "action": "nodes" })).await, &pc.id),
        None
    );

    // One reply per device, in order.
    let unknown = format!("node//{}", b64_at_dollar(&[7u8; 48]));
    let replies = call(
        &mut alice,
        json!({ "action": "changeDeviceMesh", "nodeids": [pc.id, unknown, w.lab_pc.id, "a/b"], "meshid": annex.id }),
    )
    .await;
    assert_eq!(
        replies,
        [
            refused("changeDeviceMesh", "Device already in correct group"),
            refused("changeDeviceMesh", "Device not found"),
            refused("changeDeviceMesh", "Device not found"),
            refused("changeDeviceMesh", "Device not found"),
        ]
    );
    // Rights: MANAGE_COMPUTERS on the target, EDIT_MESH on both.
    add_member(
        w.domain(),
        &admin_actor,
        &annex,
        &w.bob,
        MeshRights::MANAGE_COMPUTERS,
    )
    .await;
    let laptop = register_device(w.domain(), &w.office, "office-laptop").await;
    for (who, group, result) in [
        // Bob: no EDIT_MESH on Annex (the target).
        (&mut bob, &annex.id, "Permission denied"),
        // Bob: no MANAGE_COMPUTERS on Office (the target).
        (
            &mut w.session(&w.bob).await,
            &w.office.id,
            "Permission denied",
        ),
        // Lab: invisible to alice.
        (&mut alice, &w.lab.id, "Unknown device group"),
    ] {
        assert_eq!(
            call(
                who,
                json!({ "action": "changeDeviceMesh", "nodeids": [laptop.id], "meshid": group })
            )
            .await,
            [refused("changeDeviceMesh", result)],
            "{group}"
        );
    }
    add_member(
        w.domain(),
        &admin_actor,
        &annex,
        &w.bob,
        MeshRights::MANAGE_COMPUTERS | MeshRights::EDIT_MESH,
    )
    .await;
    // Bob: no EDIT_MESH on the laptop's group (the source).
    assert_eq!(
        call(
            &mut bob,
            json!({ "action": "changeDeviceMesh", "nodeids": [laptop.id], "meshid": annex.id })
        )
        .await,
        [refused("changeDeviceMesh", "Permission denied")]
    );
    // Malformed requests: one reply.
    for (request, result) in [
        (
            json!({ "action": "changeDeviceMesh", "meshid": annex.id }),
            "Invalid nodeids",
        ),
        (
            json!({ "action": "changeDeviceMesh", "nodeids": [], "meshid": annex.id }),
            "Invalid nodeids",
        ),
        (
            json!({ "action": "changeDeviceMesh", "nodeids": [5], "meshid": annex.id }),
            "Invalid nodeids",
        ),
        (
            json!({ "action": "changeDeviceMesh", "nodeids": [laptop.id] }),
            "Invalid groupid",
        ),
        (
            json!({ "action": "changeDeviceMesh", "nodeids": [laptop.id], "meshid": "short" }),
            "Invalid groupid",
        ),
        (
            json!({ "action": "changeDeviceMesh", "nodeids": [laptop.id], "meshname": "Nowhere" }),
            "Invalid groupid",
        ),
        (
            json!({ "action": "changeDeviceMesh", "nodeids": [laptop.id], "meshid": "mesh/acme/abcdefgh" }),
            "Invalid domain",
        ),
    ] {
        assert_eq!(
            call(&mut alice, request.clone()).await,
            [refused("changeDeviceMesh", result)],
            "{request}"
        );
    }
    let events = w.published();
    assert!(
        !events.iter().any(|e| e.action == "nodemeshchange"),
        "a refusal moved something: {events:?}"
    );
}

#[tokio::test]
async fn removedevices_forgets_devices_and_uninstalls_ironmesh_agent() {
    let mut w = World::new().await;
    let pc = w.office_pc.clone();
    // office-pc runs ironmesh-agent (as its coreinfo says), lab-pc the stock agent.
    let mut office_agent = w.connect(&pc);
    let mut lab_agent = w.connect(&w.lab_pc);
    w.domain()
        .store_agent_report(
            &pc.id,
            DeviceReport::CoreInfo,
            r#"{"action":"coreinfo","value":"ironmesh-agent 0.1.0"}"#,
            None,
            LiveState::default(),
        )
        .await
        .unwrap();
    let mut admin = w.session(&w.admin).await;
    // Bob holds rights on lab-pc itself: they go with it.
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "adddeviceuser", "nodeid": w.lab_pc.id, "userids": ["user//bob"], "rights": 8 })
        )
        .await,
        ok("adddeviceuser")
    );
    // Without UNINSTALL, unknown or invisible: "Denied", one reply per id, nothing removed.
    let mut alice = w.session(&w.alice).await;
    let unknown = format!("node//{}", b64_at_dollar(&[7u8; 48]));
    assert_eq!(
        call(
            &mut alice,
            json!({ "action": "removedevices", "nodeids": [pc.id, w.lab_pc.id, unknown, 5, "node/acme/x"] })
        )
        .await,
        [
            refused("removedevices", "Denied"),
            refused("removedevices", "Denied"),
            refused("removedevices", "Denied"),
            refused("removedevices", "Invalid nodeid"),
            refused("removedevices", "Invalid domain"),
        ]
    );
    assert_eq!(
        one(&mut alice, json!({ "action": "removedevices" })).await,
        refused("removedevices", "Invalid nodeids")
    );
    w.published();
    assert!(office_agent.try_recv().is_err() && lab_agent.try_recv().is_err());

    assert_eq!(
        call(
            &mut admin,
            json!({ "action": "removedevices", "nodeids": [id_key(&pc.id), w.lab_pc.id], "responseid": "r" })
        )
        .await,
        [
            json!({ "action": "removedevices", "responseid": "r", "result": "ok" }),
            json!({ "action": "removedevices", "responseid": "r", "result": "ok" }),
        ]
    );
    // ironmesh-agent is told to uninstall, then disconnected; the stock agent only
    // disconnected (as MeshCentral does: it enrols again as a new device).
    assert_eq!(
        next_to_agent(&mut office_agent),
        Some(json!({ "action": "uninstallagent" }))
    );
    assert_eq!(next_to_agent(&mut office_agent), None);
    assert_eq!(next_to_agent(&mut lab_agent), None);
    assert_eq!(
        one(&mut admin, json!({ "action": "nodes" })).await,
        json!({ "action": "nodes", "nodes": {} })
    );
    assert!(!w.domain().device_exists(&pc.id).await.unwrap());
    let events = w.published();
    let summary: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.msg.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "removenode",
                "Removed device office-pc from device group Office"
            ),
            ("accountchange", "Removed user device rights for bob"),
            ("removenode", "Removed device lab-pc from device group Lab"),
        ]
    );
    assert_eq!(
        events[0].to_json(),
        json!({
            "etype": "node",
            "action": "removenode",
            "msg": "Removed device office-pc from device group Office",
            "time": iso_time(events[0].time_ms),
            "userid": "user//admin",
            "username": "admin",
            "meshid": w.office.id,
            "nodeid": pc.id,
            "remoteaddr": "127.0.0.1",
            "msgid": 87,
            "msgArgs": ["office-pc", "Office"],
            "domain": "",
        })
    );
    // Bob, linked to lab-pc, was told; his link is gone with the device.
    assert_eq!(events[2].targets, [w.lab.id.as_str(), "user//bob"]);
    assert!(actor(w.domain(), &w.bob).await.device_links.is_empty());
    // The event log keeps the device's history.
    let mut filter = EventFilter {
        node_id: Some(&pc.id),
        limit: 100,
        ..Default::default()
    };
    filter.action = Some("removenode");
    assert_eq!(w.domain().stored_events(&filter).await.unwrap().len(), 1);
    // Gone is unknown.
    assert_eq!(
        call(
            &mut admin,
            json!({ "action": "removedevices", "nodeids": [pc.id] })
        )
        .await,
        [refused("removedevices", "Denied")]
    );
}

#[tokio::test]
async fn adddeviceuser_gives_one_user_rights_on_one_device() {
    let mut w = World::new().await;
    let lab_pc = w.lab_pc.clone();
    let mut admin = w.session(&w.admin).await;
    let mut bob = w.session(&w.bob).await;
    let rights = MeshRights::REMOTE_CONTROL | MeshRights::REMOTE_COMMAND;
    w.published();
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "adddeviceuser", "nodeid": id_key(&lab_pc.id), "usernames": ["Bob"], "rights": rights, "responseid": "a" })
        )
        .await,
        json!({ "action": "adddeviceuser", "responseid": "a", "result": "ok" })
    );
    let events = w.published();
    let summary: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e.etype, e.action.as_str(), e.msg.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "user",
                "accountchange",
                "Changed user device rights for bob"
            ),
            (
                "node",
                "changenode",
                "Changed user device rights for lab-pc"
            ),
        ]
    );
    assert_eq!(events[1].to_json()["msgid"], 82);
    assert_eq!(events[1].targets, [w.lab.id.as_str(), "user//bob"]);
    // Bob sees lab-pc (not its group), with the device's links, and may use what the link
    // allows there and nothing else.
    let mut linked = node_view(&lab_pc);
    linked["links"] = json!({ "user//bob": { "rights": rights } });
    let nodes = one(&mut bob, json!({ "action": "nodes" })).await;
    assert_eq!(nodes["nodes"][&w.lab.id], json!([linked]));
    let meshes = one(&mut bob, json!({ "action": "meshes" })).await;
    assert!(!meshes.to_string().contains(&w.lab.id), "{meshes}");
    assert_eq!(
        one(&mut bob, json!({ "action": "nodes", "meshid": w.lab.id })).await,
        refused("nodes", "Invalid group id")
    );
    let mut agent = w.connect(&lab_pc);
    assert_eq!(
        one(
            &mut bob,
            json!({ "action": "runcommands", "nodeids": [lab_pc.id], "cmds": "id" })
        )
        .await,
        json!({ "action": "runcommands", "result": "OK" })
    );
    assert_eq!(sent(&mut agent)["cmds"], "id");
    for (request, result) in [
        (
            json!({ "action": "getsysinfo", "nodeid": lab_pc.id }),
            "Access denied",
        ),
        (
            json!({ "action": "changedevice", "nodeid": lab_pc.id, "name": "bobs" }),
            "Access Denied",
        ),
        (
            json!({ "action": "removedevices", "nodeids": [lab_pc.id] }),
            "Denied",
        ),
        (
            json!({ "action": "adddeviceuser", "nodeid": lab_pc.id, "userid": "alice", "rights": 8 }),
            "Access denied",
        ),
    ] {
        let action = request["action"].as_str().unwrap().to_string();
        assert_eq!(
            one(&mut bob, request.clone()).await,
            refused(&action, result),
            "{request}"
        );
    }
    // The device's events are his to read and to receive; the group's others are not.
    for wanted in [
        json!({ "action": "events", "nodeid": lab_pc.id }),
        json!({ "action": "events" }),
    ] {
        let listed = one(&mut bob, wanted).await;
        let listed = messages(&listed);
        assert!(listed.contains(&"Running commands"), "{listed:?}");
        assert!(
            listed.contains(&"Changed user device rights for lab-pc"),
            "{listed:?}"
        );
        assert!(!listed.contains(&"Device group Lab created"), "{listed:?}");
    }
    let bob_actor = actor(w.domain(), &w.bob).await;
    let about_lab_pc = Event::new("node", "changenode", "x")
        .by(&w.admin.id, "admin")
        .group(&w.lab.id)
        .node(&lab_pc.id);
    assert!(bob_actor.may_see(&about_lab_pc));
    let about_lab = Event::new("mesh", "meshchange", "x")
        .by(&w.admin.id, "admin")
        .group(&w.lab.id);
    assert!(!bob_actor.may_see(&about_lab));
    assert!(w
        .domain()
        .users_with_access(&lab_pc.id)
        .await
        .unwrap()
        .contains(&w.bob.id));

    // Alice manages Office's users: she grants what she holds, and nothing more.
    let mut alice = w.session(&w.alice).await;
    let pc = &w.office_pc.id;
    for (request, result) in [
        (
            json!({ "action": "adddeviceuser", "nodeid": pc, "userid": "bob", "rights": MeshRights::AGENT_CONSOLE }),
            "Access denied",
        ),
        (
            json!({ "action": "adddeviceuser", "nodeid": lab_pc.id, "userid": "bob", "rights": 8 }),
            "Invalid nodeid",
        ),
        (
            json!({ "action": "adddeviceuser", "nodeid": pc, "userid": "bob", "rights": MeshRights::MANAGE_COMPUTERS }),
            "Invalid rights",
        ),
        (
            json!({ "action": "adddeviceuser", "nodeid": pc, "userid": "bob", "rights": FULL }),
            "Invalid rights",
        ),
        (
            json!({ "action": "adddeviceuser", "nodeid": pc, "userid": "bob" }),
            "Invalid rights",
        ),
        (
            json!({ "action": "adddeviceuser", "nodeid": pc, "userid": "bob", "rights": "8" }),
            "Invalid rights",
        ),
        (
            json!({ "action": "adddeviceuser", "nodeid": pc, "rights": 8 }),
            "Invalid usernames",
        ),
        (
            json!({ "action": "adddeviceuser", "nodeid": pc, "usernames": [], "rights": 8 }),
            "Invalid usernames",
        ),
        (
            json!({ "action": "adddeviceuser", "nodeid": pc, "usernames": ["nobody"], "rights": 8 }),
            "Invalid usernames",
        ),
        (
            json!({ "action": "adddeviceuser", "usernames": ["bob"], "rights": 8 }),
            "Invalid nodeid",
        ),
        (
            json!({ "action": "adddeviceuser", "nodeid": "node/acme/x", "usernames": ["bob"], "rights": 8 }),
            "Invalid domain",
        ),
    ] {
        assert_eq!(
            one(&mut alice, request.clone()).await,
            refused("adddeviceuser", result),
            "{request}"
        );
    }
    assert_eq!(
        one(&mut alice, json!({ "action": "adddeviceuser", "nodeid": pc, "usernames": ["bob", "nobody"], "rights": MeshRights::REMOTE_CONTROL })).await,
        ok("adddeviceuser")
    );
    // Rights add up: bob's group membership (0) and his link (remote control).
    let grant = w
        .domain()
        .authorize(
            &actor(w.domain(), &w.bob).await,
            &ironmesh_core::access::DeviceNeed {
                id: pc.clone(),
                rights: MeshRights::REMOTE_CONTROL,
            },
        )
        .await
        .unwrap();
    assert_eq!(grant.rights.0, MeshRights::REMOTE_CONTROL);

    // Removal (meshctrl removeuserfromdevice): the link goes, and with it the device.
    w.published();
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "adddeviceuser", "nodeid": lab_pc.id, "usernames": ["bob"], "rights": 0, "remove": true })
        )
        .await,
        ok("adddeviceuser")
    );
    let events = w.published();
    assert_eq!(
        events.iter().map(|e| e.msg.as_str()).collect::<Vec<_>>(),
        [
            "Removed user device rights for bob",
            "Removed user device rights for lab-pc"
        ]
    );
    assert_eq!(events[1].to_json()["msgid"], 81);
    assert!(events[1].to_json()["node"].get("links").is_none());
    assert_eq!(
        listed_node(
            &one(&mut bob, json!({ "action": "nodes" })).await,
            &lab_pc.id
        ),
        None
    );
    assert_eq!(
        one(
            &mut bob,
            json!({ "action": "runcommands", "nodeids": [lab_pc.id], "cmds": "id" })
        )
        .await,
        refused("runcommands", "Invalid nodeid")
    );
}

// ---------------------------------------------------------------------------------------
// WiFiDogX gateways
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn gateways() {
    let w = World::new().await;
    let report = GatewayReport {
        generation: "9.x".into(),
        mode: None,
        device_info: None,
        gateways: json!([{ "gw_id": "gw-a", "auth_mode": 1 }]).to_string(),
        sys_info: None,
        remote_addr: "10.0.0.9:1000".into(),
    };
    // An unknown gateway waits for approval outside the database.
    assert!(w
        .domain()
        .record_gateway_report("gw-1", report.clone(), &AdmissionRule::default())
        .await
        .unwrap()
        .is_none());
    assert!(w
        .state
        .gateways
        .note_pending("gw-1", report, 1_700_000_000_000));
    let recorded = w.state.gateways.pending().remove(0).1;
    let view = |group: Value, wanted: Value| {
        json!({
            "deviceid": "gw-1",
            "meshid": group,
            "approved": !group.is_null(),
            "generation": "9.x",
            "mode": null,
            "device_info": null,
            "gateways": [{ "gw_id": "gw-a", "auth_mode": 1 }],
            "sys_info": null,
            "wanted_auth_modes": wanted,
            "remoteaddr": "10.0.0.9:1000",
            "firstseen": recorded.first_seen_ms,
            "lastseen": recorded.last_seen_ms,
            "online": false,
        })
    };
    let mut admin = w.session(&w.admin).await;
    let mut alice = w.session(&w.alice).await;
    // Not yet approved: full site administrators only.
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "wifidogs", "responseid": "g" })
        )
        .await,
        json!({
            "action": "wifidogs",
            "responseid": "g",
            "gateways": [view(Value::Null, Value::Null)],
        })
    );
    assert_eq!(
        one(&mut alice, json!({ "action": "wifidogs" })).await,
        json!({ "action": "wifidogs", "gateways": [] })
    );
    let authmode =
        json!({ "action": "wifidogauthmode", "deviceid": "gw-1", "gwid": "gw-a", "authmode": 0 });
    assert_eq!(
        one(&mut alice, authmode.clone()).await,
        refused("wifidogauthmode", "Unknown gateway")
    );

    // wifidogapprove needs managing devices of the group.
    let approve = json!({ "action": "wifidogapprove", "meshid": w.office.id, "deviceid": "gw-1" });
    assert_eq!(
        one(&mut alice, approve.clone()).await,
        refused("wifidogapprove", "Access denied")
    );
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "wifidogapprove", "meshid": w.office.id, "deviceid": "gw-2" })
        )
        .await,
        refused("wifidogapprove", "Unknown gateway")
    );
    assert_eq!(one(&mut admin, approve).await, ok("wifidogapprove"));
    assert_eq!(
        one(&mut alice, json!({ "action": "wifidogs" })).await,
        json!({ "action": "wifidogs", "gateways": [view(json!(w.office.id), Value::Null)] })
    );

    // wifidogauthmode: stored, pushed only to a connected gateway.
    assert_eq!(
        one(&mut alice, authmode).await,
        json!({ "action": "wifidogauthmode", "result": "ok", "pushed": false })
    );
    assert_eq!(
        one(
            &mut alice,
            json!({
                "action": "wifidogauthmode",
                "deviceid": "gw-1",
                "gwid": "gw-b",
                "authmode": 1,
            })
        )
        .await,
        refused("wifidogauthmode", "Unknown gateway id on this device")
    );
    assert_eq!(
        one(&mut alice, json!({ "action": "wifidogs" })).await,
        json!({
            "action": "wifidogs",
            "gateways": [view(json!(w.office.id), json!({ "gw-a": 0 }))],
        })
    );

    // wifidogcmd needs a connected gateway and remote-control rights.
    let cmd = json!({ "action": "wifidogcmd", "deviceid": "gw-1", "op": "reboot", "params": {} });
    assert_eq!(
        one(&mut alice, cmd.clone()).await,
        refused("wifidogcmd", "Gateway offline")
    );
    let mut bob = w.session(&w.bob).await;
    assert_eq!(
        one(&mut bob, cmd).await,
        refused("wifidogcmd", "Access denied")
    );
    assert_eq!(
        one(
            &mut bob,
            json!({
                "action": "wifidogauthmode",
                "deviceid": "gw-1",
                "gwid": "gw-a",
                "authmode": 1,
            })
        )
        .await,
        refused("wifidogauthmode", "Access denied")
    );
    for (request, result) in [
        (
            json!({ "action": "wifidogcmd", "deviceid": "gw-1", "op": "re-boot" }),
            "Invalid op: letters, digits and _ only",
        ),
        (
            json!({ "action": "wifidogcmd", "deviceid": "gw-1", "op": "reboot", "params": [1] }),
            "Field params must be an object",
        ),
        (
            json!({ "action": "wifidogcmd", "deviceid": "gw-1", "op": "reboot", "timeout": -1 }),
            "Field timeout must be a number from 0 to 4294967295",
        ),
        (
            json!({ "action": "wifidogcmd", "deviceid": "gw-1" }),
            "Missing field: op",
        ),
        (
            json!({ "action": "wifidogcmd", "op": "reboot" }),
            "Missing field: deviceid",
        ),
    ] {
        let action = request["action"].as_str().unwrap().to_string();
        assert_eq!(
            one(&mut alice, request.clone()).await,
            refused(&action, result),
            "{request}"
        );
    }
    let modes = "Field authmode must be 0 (open) or 1 (captive portal)";
    for (authmode, result) in [
        (json!(2), modes),
        (Value::Null, modes),
        (
            json!("1"),
            "Field authmode must be a number from 0 to 4294967295",
        ),
    ] {
        assert_eq!(
            one(
                &mut alice,
                json!({
                    "action": "wifidogauthmode",
                    "deviceid": "gw-1",
                    "gwid": "gw-a",
                    "authmode": authmode,
                })
            )
            .await,
            refused("wifidogauthmode", result),
            "{authmode}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Refusals across actions
// ---------------------------------------------------------------------------------------

/// Fields are read with their types before anything else: errors name the field.
#[tokio::test]
async fn typed_field_errors() {
    let w = World::new().await;
    let mut admin = w.session(&w.admin).await;
    let pc = w.office_pc.id.clone();
    let range = |field: &str| format!("Field {field} must be a number from 0 to 4294967295");
    let cases: Vec<(Value, String)> = vec![
        // Missing fields (absent or empty).
        (
            json!({ "action": "adduser", "pass": "long-enough" }),
            "Missing field: username".into(),
        ),
        (
            json!({ "action": "adduser", "username": "", "pass": "long-enough" }),
            "Missing field: username".into(),
        ),
        (
            json!({ "action": "adduser", "username": "carol" }),
            "Missing field: pass".into(),
        ),
        (
            json!({ "action": "deleteuser" }),
            "Missing field: userid".into(),
        ),
        (
            json!({ "action": "edituser", "realname": "x" }),
            "Missing field: userid".into(),
        ),
        (
            json!({ "action": "changeuserpass", "userid": "bob" }),
            "Missing field: pass".into(),
        ),
        (
            json!({ "action": "changepassword", "newpass": "long-enough" }),
            "Missing field: oldpass".into(),
        ),
        (
            json!({ "action": "changepassword", "oldpass": "long-enough", "newpass": "" }),
            "Missing field: newpass".into(),
        ),
        (
            json!({ "action": "createmesh" }),
            "Missing field: meshname".into(),
        ),
        (
            json!({ "action": "deletemesh" }),
            "Missing field: meshid or meshname".into(),
        ),
        (
            json!({ "action": "editmesh", "desc": "x" }),
            "Missing field: meshid or meshname".into(),
        ),
        (
            json!({ "action": "addmeshuser", "meshid": w.office.id }),
            "Missing field: userid".into(),
        ),
        (
            json!({ "action": "addmeshuser", "meshid": w.office.id, "usernames": [] }),
            "Missing field: usernames".into(),
        ),
        (
            json!({ "action": "removemeshuser", "meshid": w.office.id }),
            "Missing field: userid".into(),
        ),
        (
            json!({ "action": "getnetworkinfo" }),
            "Missing field: nodeid".into(),
        ),
        (
            json!({ "action": "lastconnect", "nodeid": "" }),
            "Missing field: nodeid".into(),
        ),
        (
            json!({ "action": "getsysinfo" }),
            "Missing field: nodeid".into(),
        ),
        (
            json!({ "action": "runcommands", "cmds": "ls" }),
            "Missing field: nodeid".into(),
        ),
        (
            json!({ "action": "createLoginToken" }),
            "Missing field: name".into(),
        ),
        (
            json!({ "action": "wifidogapprove", "deviceid": "gw" }),
            "Missing field: meshid".into(),
        ),
        (
            json!({ "action": "wifidogapprove", "meshid": w.office.id }),
            "Missing field: deviceid".into(),
        ),
        (
            json!({ "action": "wifidogauthmode", "deviceid": "gw", "authmode": 1 }),
            "Missing field: gwid".into(),
        ),
        // Strings of the wrong type.
        (
            json!({ "action": "adduser", "username": 5, "pass": "long-enough" }),
            "Field username must be a string".into(),
        ),
        (
            json!({ "action": "adduser", "username": "carol", "pass": "long-enough", "email": 1 }),
            "Field email must be a string".into(),
        ),
        (
            json!({
                "action": "adduser",
                "username": "carol",
                "pass": "long-enough",
                "realname": [],
            }),
            "Field realname must be a string".into(),
        ),
        (
            json!({ "action": "deleteuser", "userid": ["bob"] }),
            "Field userid must be a string".into(),
        ),
        (
            json!({ "action": "edituser", "userid": 1 }),
            "Field userid must be a string".into(),
        ),
        (
            json!({ "action": "edituser", "userid": "bob", "email": true }),
            "Field email must be a string".into(),
        ),
        (
            json!({ "action": "changeuserpass", "userid": "bob", "pass": 12345678 }),
            "Field pass must be a string".into(),
        ),
        (
            json!({ "action": "createmesh", "meshname": {} }),
            "Field meshname must be a string".into(),
        ),
        (
            json!({ "action": "createmesh", "meshname": "x", "desc": 1 }),
            "Field desc must be a string".into(),
        ),
        (
            json!({ "action": "deletemesh", "meshid": 1 }),
            "Field meshid must be a string".into(),
        ),
        (
            json!({ "action": "editmesh", "meshid": w.office.id, "meshname": 1 }),
            "Field meshname must be a string".into(),
        ),
        (
            json!({ "action": "editmesh", "meshname": "Office", "newname": 1 }),
            "Field newname must be a string".into(),
        ),
        (
            json!({ "action": "nodes", "meshname": 1 }),
            "Field meshname must be a string".into(),
        ),
        (
            json!({ "action": "getsysinfo", "nodeid": 1 }),
            "Field nodeid must be a string".into(),
        ),
        (
            json!({ "action": "msg", "nodeid": pc, "type": ["ps"] }),
            "Field type must be a string".into(),
        ),
        (
            json!({ "action": "runcommands", "nodeid": pc, "cmds": 1 }),
            "Field cmds must be a string".into(),
        ),
        (
            json!({ "action": "events", "nodeid": 1 }),
            "Field nodeid must be a string".into(),
        ),
        (
            json!({ "action": "events", "user": 1 }),
            "Field user must be a string".into(),
        ),
        (
            json!({ "action": "events", "meshid": 1 }),
            "Field meshid must be a string".into(),
        ),
        (
            json!({ "action": "events", "filter": ["login"] }),
            "Field filter must be a string".into(),
        ),
        (
            json!({ "action": "changepassword", "oldpass": "x", "newpass": 12345678 }),
            "Field newpass must be a string".into(),
        ),
        (
            json!({ "action": "createLoginToken", "name": 1 }),
            "Field name must be a string".into(),
        ),
        (
            json!({ "action": "wifidogcmd", "deviceid": 1, "op": "x" }),
            "Field deviceid must be a string".into(),
        ),
        // Numbers out of range or of the wrong type.
        (
            json!({
                "action": "adduser",
                "username": "carol",
                "pass": "long-enough",
                "siteadmin": -1,
            }),
            range("siteadmin"),
        ),
        (
            json!({
                "action": "adduser",
                "username": "carol",
                "pass": "long-enough",
                "siteadmin": 4_294_967_296u64,
            }),
            range("siteadmin"),
        ),
        (
            json!({ "action": "edituser", "userid": "bob", "siteadmin": 1.5 }),
            range("siteadmin"),
        ),
        (
            json!({ "action": "edituser", "userid": "bob", "siteadmin": "2" }),
            range("siteadmin"),
        ),
        (
            json!({ "action": "createmesh", "meshname": "x", "meshtype": -2 }),
            range("meshtype"),
        ),
        (
            json!({
                "action": "addmeshuser",
                "meshid": w.office.id,
                "userid": "bob",
                "meshadmin": 4_294_967_296u64,
            }),
            range("meshadmin"),
        ),
        (json!({ "action": "events", "limit": -1 }), range("limit")),
        (
            json!({ "action": "events", "since": -1 }),
            "Field since must be a time in Unix milliseconds".into(),
        ),
        (
            json!({ "action": "events", "until": "2026-01-01" }),
            "Field until must be a time in Unix milliseconds".into(),
        ),
        (
            json!({ "action": "events", "since": 1.5 }),
            "Field since must be a time in Unix milliseconds".into(),
        ),
        (json!({ "action": "events", "limit": "10" }), range("limit")),
        (
            json!({ "action": "createLoginToken", "name": "x", "expire": -5 }),
            range("expire"),
        ),
        (
            json!({ "action": "runcommands", "nodeid": pc, "cmds": "ls", "type": 5 }),
            "Invalid command type".into(),
        ),
        // Lists of the wrong type.
        (
            json!({ "action": "addmeshuser", "meshid": w.office.id, "usernames": "bob" }),
            "Field usernames must be a list of names".into(),
        ),
        (
            json!({ "action": "addmeshuser", "meshid": w.office.id, "usernames": ["bob", 1] }),
            "Field usernames must be a list of names".into(),
        ),
        (
            json!({ "action": "runcommands", "nodeids": pc, "cmds": "ls" }),
            "Field nodeids must be a list of device ids".into(),
        ),
        (
            json!({ "action": "runcommands", "nodeids": [], "cmds": "ls" }),
            "Field nodeids must be a list of device ids".into(),
        ),
        (
            json!({ "action": "runcommands", "nodeids": [pc, null], "cmds": "ls" }),
            "Field nodeids must be a list of device ids".into(),
        ),
        (
            json!({ "action": "loginTokens", "remove": "x" }),
            "Field remove must be a list of token names".into(),
        ),
        (
            json!({ "action": "loginTokens", "remove": [{}] }),
            "Field remove must be a list of token names".into(),
        ),
        // Too long.
        (
            json!({ "action": "runcommands", "nodeid": pc, "cmds": "x".repeat(65_536) }),
            "Command too long: at most 65535 characters".into(),
        ),
    ];
    for (request, result) in cases {
        let action = request["action"].as_str().unwrap().to_string();
        assert_eq!(
            one(&mut admin, request.clone()).await,
            refused(&action, &result),
            "{request}"
        );
    }
}

/// An id the caller may not see is answered exactly as an id that does not exist, so ids
/// cannot be probed.
#[tokio::test]
async fn invisible_ids_read_as_unknown() {
    let w = World::new().await;
    let mut alice = w.session(&w.alice).await;
    let unknown_node = format!("node//{}", b64_at_dollar(&[7u8; 48]));
    let unknown_mesh = format!("mesh//{}", b64_at_dollar(&[7u8; 48]));
    type Build = fn(&str) -> Value;
    let device_requests: [Build; 11] = [
        |id| json!({ "action": "changedevice", "nodeid": id, "name": "x" }),
        |id| json!({ "action": "removedevices", "nodeids": [id] }),
        |id| json!({ "action": "changeDeviceMesh", "nodeids": [id], "meshname": "Office" }),
        |id| json!({ "action": "adddeviceuser", "nodeid": id, "userid": "bob", "rights": 8 }),
        |id| json!({ "action": "getnetworkinfo", "nodeid": id }),
        |id| json!({ "action": "lastconnect", "nodeid": id }),
        |id| json!({ "action": "getsysinfo", "nodeid": id }),
        |id| json!({ "action": "events", "nodeid": id }),
        |id| json!({ "action": "msg", "type": "ps", "nodeid": id }),
        |id| json!({ "action": "runcommands", "nodeid": id, "cmds": "ls" }),
        |id| json!({ "action": "runcommands", "nodeids": [id], "cmds": "ls" }),
    ];
    let group_requests: [Build; 6] = [
        |id| json!({ "action": "nodes", "meshid": id }),
        |id| json!({ "action": "editmesh", "meshid": id, "desc": "x" }),
        |id| json!({ "action": "deletemesh", "meshid": id }),
        |id| json!({ "action": "addmeshuser", "meshid": id, "userid": "bob" }),
        |id| json!({ "action": "removemeshuser", "meshid": id, "userid": "bob" }),
        |id| json!({ "action": "wifidogapprove", "meshid": id, "deviceid": "gw" }),
    ];
    let name_requests: [Build; 3] = [
        |name| json!({ "action": "nodes", "meshname": name }),
        |name| json!({ "action": "editmesh", "meshname": name, "desc": "x" }),
        |name| json!({ "action": "deletemesh", "meshname": name }),
    ];
    let cases = device_requests
        .iter()
        .map(|build| (build, w.lab_pc.id.as_str(), unknown_node.as_str()))
        .chain(
            group_requests
                .iter()
                .map(|build| (build, w.lab.id.as_str(), unknown_mesh.as_str())),
        )
        .chain(name_requests.iter().map(|build| (build, "Lab", "Nowhere")));
    for (build, invisible, unknown) in cases {
        let invisible_reply = one(&mut alice, build(invisible)).await;
        let unknown_reply = one(&mut alice, build(unknown)).await;
        assert_eq!(invisible_reply, unknown_reply, "{}", build(invisible));
        assert_eq!(invisible_reply["failed"], true, "{invisible_reply}");
    }
    // The texts.
    let texts = [
        (
            json!({ "action": "getsysinfo", "nodeid": w.lab_pc.id }),
            "Invalid device id",
        ),
        (
            json!({ "action": "runcommands", "nodeid": w.lab_pc.id, "cmds": "ls" }),
            "Invalid nodeid",
        ),
        (
            json!({ "action": "nodes", "meshid": w.lab.id }),
            "Invalid group id",
        ),
        (
            json!({ "action": "nodes", "meshname": "Lab" }),
            "Unknown device group",
        ),
        // Malformed ids read as unknown too.
        (
            json!({ "action": "getsysinfo", "nodeid": "mesh//abc" }),
            "Invalid device id",
        ),
        (
            json!({ "action": "runcommands", "nodeid": "a/b", "cmds": "ls" }),
            "Invalid nodeid",
        ),
        (
            json!({ "action": "nodes", "meshid": "node//abc" }),
            "Invalid group id",
        ),
        (
            json!({ "action": "deleteuser", "userid": "a/b" }),
            "User does not exists",
        ),
        (
            json!({ "action": "events", "userid": "a/b" }),
            "User does not exists",
        ),
    ];
    for (request, result) in texts {
        let action = request["action"].as_str().unwrap().to_string();
        assert_eq!(
            one(&mut alice, request.clone()).await,
            refused(&action, result),
            "{request}"
        );
    }
}

/// Visible objects without the needed rights, and site actions without the site right:
/// `Access denied`.
#[tokio::test]
async fn missing_rights_are_denied() {
    let w = World::new().await;
    let mut bob = w.session(&w.bob).await;
    let office = w.office.id.clone();
    let pc = w.office_pc.id.clone();
    let requests = [
        json!({ "action": "users" }),
        json!({ "action": "adduser", "username": "carol", "pass": "carol-password" }),
        json!({ "action": "deleteuser", "userid": "alice" }),
        json!({ "action": "edituser", "userid": "alice", "realname": "x" }),
        json!({ "action": "changeuserpass", "userid": "alice", "pass": "alice-new-password" }),
        json!({ "action": "deletemesh", "meshid": office }),
        json!({ "action": "editmesh", "meshid": office, "desc": "x" }),
        json!({ "action": "addmeshuser", "meshid": office, "userid": "manager" }),
        json!({ "action": "removemeshuser", "meshid": office, "userid": "alice" }),
        json!({ "action": "msg", "type": "ps", "nodeid": pc }),
        json!({ "action": "runcommands", "nodeid": pc, "cmds": "ls" }),
        json!({ "action": "wifidogapprove", "meshid": office, "deviceid": "gw" }),
        // Device details need DEVICE_DETAILS.
        json!({ "action": "getsysinfo", "nodeid": pc }),
        json!({ "action": "getnetworkinfo", "nodeid": pc }),
        // New accounts may not create groups (the default policy).
        json!({ "action": "createmesh", "meshname": "Mine" }),
    ];
    for request in requests {
        let action = request["action"].as_str().unwrap().to_string();
        assert_eq!(
            one(&mut bob, request.clone()).await,
            // MeshCentral's words for adduser (meshctrl prints them).
            refused(
                &action,
                if action == "adduser" {
                    "Permission denied"
                } else {
                    "Access denied"
                }
            ),
            "{request}"
        );
    }
    // NO_NEW_GROUPS is what blocks creating groups: lifted, bob creates one; set again,
    // he cannot.
    let mut admin = w.session(&w.admin).await;
    let create = json!({ "action": "createmesh", "meshname": "Mine" });
    for (site_rights, created) in [(0, true), (SiteRights::NO_NEW_GROUPS, false)] {
        assert_eq!(
            one(
                &mut admin,
                json!({ "action": "edituser", "userid": "bob", "siteadmin": site_rights })
            )
            .await,
            ok("edituser")
        );
        let reply = one(&mut bob, create.clone()).await;
        if created {
            assert_eq!(reply["result"], "ok", "{reply}");
        } else {
            assert_eq!(reply, refused("createmesh", "Access denied"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// The action table
// ---------------------------------------------------------------------------------------

/// Every action name reaches its action (none is answered as unknown), and a name outside
/// the table is.
#[tokio::test]
async fn every_name_is_routed() {
    let w = World::new().await;
    let mut admin = w.session(&w.admin).await;
    for name in ACTION_NAMES {
        for reply in call(&mut admin, json!({ "action": name })).await {
            assert_ne!(reply["cause"], "unknownaction", "{name}: {reply}");
        }
    }
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "nosuchaction", "responseid": "r" })
        )
        .await,
        json!({
            "action": "nosuchaction",
            "responseid": "r",
            "failed": true,
            "cause": "unknownaction",
            "result": "Unknown action: nosuchaction",
        })
    );
}

/// The current TOTP code of a base32 secret.
fn totp_now(secret: &str) -> String {
    let key = ironmesh_core::twofactor::base32_decode(secret).unwrap();
    let step = ironmesh_core::model::now_ms() / 1000 / ironmesh_core::twofactor::STEP_SECS;
    format!("{:06}", ironmesh_core::twofactor::totp_code(&key, step))
}

#[tokio::test]
async fn second_factors_of_the_callers_account() {
    let w = World::new().await;
    let mut alice = w.session(&w.alice).await;
    let status = |totp: bool, codes: usize| {
        json!({ "action": "otp-status", "totp": totp, "passkeys": [], "recoverycodes": codes,
                "passkeysavailable": true })
    };
    assert_eq!(
        one(&mut alice, json!({ "action": "otp-status" })).await,
        status(false, 0)
    );
    assert_eq!(
        one(&mut alice, json!({ "action": "otpauth-getpasswords" })).await,
        refused(
            "otpauth-getpasswords",
            "Recovery codes come with a second factor: add one first"
        )
    );
    let offer = one(&mut alice, json!({ "action": "otpauth-request" })).await;
    let secret = offer["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 32, "{offer}");
    let url = offer["url"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/ironmesh%3Aalice?secret=") && url.contains(&secret),
        "{url}"
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "otpauth-setup", "secret": secret, "token": "000000x" })
        )
        .await,
        refused(
            "otpauth-setup",
            "Wrong code: check the authenticator's clock and try the next code"
        )
    );
    let setup = one(
        &mut alice,
        json!({ "action": "otpauth-setup", "secret": secret, "token": totp_now(&secret) }),
    )
    .await;
    assert_eq!(setup["success"], true, "{setup}");
    let codes: Vec<String> = setup["recoverycodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        one(&mut alice, json!({ "action": "otp-status" })).await,
        status(true, 10)
    );
    // A password alone no longer signs in; a recovery code does, once.
    let domain = w.domain();
    assert!(matches!(
        domain
            .check_login("alice", "alice-password", None)
            .await
            .unwrap(),
        Err(ironmesh_core::accounts::LoginFailure::SecondFactorRequired { .. })
    ));
    assert!(domain
        .check_login("alice", "alice-password", Some(&codes[0]))
        .await
        .unwrap()
        .is_ok());
    assert!(matches!(
        domain
            .check_login("alice", "alice-password", Some(&codes[0]))
            .await
            .unwrap(),
        Err(ironmesh_core::accounts::LoginFailure::SecondFactorWrong { .. })
    ));
    let fresh = one(&mut alice, json!({ "action": "otpauth-getpasswords" })).await;
    assert_eq!(fresh["passwords"].as_array().unwrap().len(), 10);
    // Passkeys: registration starts with options for the browser; the answer must be one.
    let start = one(&mut alice, json!({ "action": "webauthn-startregister" })).await;
    assert_eq!(
        start["request"]["publicKey"]["rp"]["id"], "localhost",
        "{start}"
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "webauthn-endregister", "name": "key" })
        )
        .await,
        refused("webauthn-endregister", "Missing field: response")
    );
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "otp-hkey-remove", "id": "not-a-key" })
        )
        .await,
        refused("otp-hkey-remove", "Unknown passkey")
    );
    // Another user's factors: only user managers remove them.
    let mut bob = w.session(&w.bob).await;
    assert_eq!(
        one(
            &mut bob,
            json!({ "action": "otpauth-clear", "userid": "alice" })
        )
        .await,
        refused("otpauth-clear", "Access denied")
    );
    let mut admin = w.session(&w.admin).await;
    assert_eq!(
        one(
            &mut admin,
            json!({ "action": "otpauth-clear", "userid": "alice" })
        )
        .await,
        ok("otpauth-clear")
    );
    assert_eq!(
        one(&mut alice, json!({ "action": "otp-status" })).await,
        status(false, 0)
    );
    assert!(domain
        .check_login("alice", "alice-password", None)
        .await
        .unwrap()
        .is_ok());
}

#[tokio::test]
async fn recordings_are_listed_for_who_may_watch_them() {
    let w = World::new().await;
    let recording = ironmesh_core::model::RecordingRecord {
        id: "00aa".into(),
        node_id: Some(w.office_pc.id.clone()),
        group_id: Some(w.office.id.clone()),
        user_id: w.admin.id.clone(),
        username: "admin".into(),
        protocol: 1,
        format: "asciicast-v2".into(),
        file: "00aa.cast".into(),
        size: 10,
        started_ms: 1,
        ended_ms: 2,
        event_id: None,
    };
    w.domain().save_recording(&recording).await.unwrap();
    let mut admin = w.session(&w.admin).await;
    let list = one(&mut admin, json!({ "action": "recordings" })).await;
    assert_eq!(
        list["recordings"][0]["url"], "/recordings/00aa.cast",
        "{list}"
    );
    assert_eq!(list["recordings"][0]["nodeid"], w.office_pc.id.as_str());
    // A member of the group without the RECORDINGS site right sees none.
    let mut alice = w.session(&w.alice).await;
    assert_eq!(
        one(&mut alice, json!({ "action": "recordings" })).await,
        json!({ "action": "recordings", "recordings": [] })
    );
}

/// Every action in the table is exercised by a request in this file, so a new action
/// cannot go untested here. (The pattern is assembled, so this test does not count.)
#[test]
fn every_action_is_tested_here() {
    let source = include_str!("tests.rs");
    let untested: Vec<&str> = ACTION_NAMES
        .iter()
        .copied()
        .filter(|name| !source.contains(&format!("\"action\": \"{name}\"")))
        .collect();
    assert!(untested.is_empty(), "actions without a test: {untested:?}");
}

/// `require_second_factor = true`: a password account without a factor is pending (and
/// only enrolment actions pass); an account of single sign-on is not (its provider decides);
/// with the policy off nobody is.
#[tokio::test]
async fn a_required_second_factor_spares_single_sign_on_accounts() {
    for required in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let state = test_state_with(dir.path(), |config| {
            config.require_second_factor = required;
        })
        .await;
        let local = add_user(&state.domain, "local", 0).await;
        let sso = state
            .domain
            .sso_sign_in(ironmesh_core::sso::SsoAccount {
                identity: "https://id.example|sub-1".into(),
                username: "staff".into(),
                email: None,
                realname: None,
                site_rights: None,
                memberships: Vec::new(),
                mapped_groups: Vec::new(),
            })
            .await
            .unwrap();
        let pending = |a: Actor| a.second_factor_pending;
        assert_eq!(pending(actor(&state.domain, &local).await), required);
        assert!(!pending(actor(&state.domain, &sso).await));
        let mut s = session(&state, &local).await;
        let meshes = one(&mut s, json!({ "action": "meshes" })).await;
        assert_eq!(meshes.get("failed").is_some(), required, "{meshes}");
        let status = one(&mut s, json!({ "action": "otp-status" })).await;
        assert!(status.get("failed").is_none(), "{status}");
        let mut s = session(&state, &sso).await;
        let meshes = one(&mut s, json!({ "action": "meshes" })).await;
        assert!(meshes.get("failed").is_none(), "{meshes}");
    }
}

// ---------------------------------------------------------------------------------------
// Power and messages: poweraction, wakedevices, powertimeline, toast, msg messagebox
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn poweraction_goes_to_connected_devices_with_the_reset_right() {
    let mut w = World::new().await;
    let pc = w.office_pc.clone();
    let mut admin = w.session(&w.admin).await;
    let mut alice = w.session(&w.alice).await;
    let restart = json!({ "action": "poweraction", "nodeids": [pc.id], "actiontype": 3 });
    w.published();
    assert_eq!(
        one(&mut admin, restart.clone()).await,
        refused("poweraction", "Agent not connected")
    );
    let mut agent = w.connect(&pc);
    // Alice may control the device, but not switch it off.
    assert_eq!(
        one(&mut alice, restart.clone()).await,
        refused("poweraction", "Access denied")
    );
    let lab = json!({ "action": "poweraction", "nodeids": [w.lab_pc.id], "actiontype": 2 });
    assert_eq!(
        one(&mut alice, lab).await,
        refused("poweraction", "Invalid nodeid")
    );
    // One refused device among several: nothing is sent to any.
    let both = json!({ "action": "poweraction", "nodeids": [pc.id, w.lab_pc.id], "actiontype": 2 });
    assert_eq!(
        one(&mut alice, both).await,
        refused("poweraction", "Access denied")
    );
    assert!(agent.try_recv().is_err());
    assert!(w.published().is_empty());

    assert_eq!(one(&mut admin, restart).await, ok("poweraction"));
    assert_eq!(
        sent(&mut agent),
        json!({
            "action": "poweraction",
            "actiontype": 3,
            "userid": "user//admin",
            "username": "admin",
            "remoteaddr": "127.0.0.1",
        })
    );
    let events = w.published();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].persist);
    let e = events[0].to_json();
    assert_eq!(
        (
            &e["action"],
            &e["msgid"],
            &e["msg"],
            &e["msgArgs"],
            &e["nodeid"]
        ),
        (
            &json!("agentlog"),
            &json!(25),
            &json!("Performing power action=3, forced=0"),
            &json!([3, 0]),
            &json!(pc.id)
        ),
        "{e}"
    );
    for (actiontype, result) in [
        (json!(310), "Intel AMT power actions are not supported"),
        (
            json!(1),
            "Invalid action type: expected 2 (power off), 3 (restart) or 4 (sleep)",
        ),
        (
            json!(null),
            "Invalid action type: expected 2 (power off), 3 (restart) or 4 (sleep)",
        ),
    ] {
        let r = json!({ "action": "poweraction", "nodeids": [pc.id], "actiontype": actiontype });
        assert_eq!(one(&mut admin, r).await, refused("poweraction", result));
    }
}

#[tokio::test]
async fn wakedevices_asks_the_agents_of_groups_with_the_wake_right() {
    let mut w = World::new().await;
    let pc = w.office_pc.clone();
    let mut admin = w.session(&w.admin).await;
    let mut alice = w.session(&w.alice).await;
    let wake = json!({ "action": "wakedevices", "nodeids": [id_key(&pc.id)], "responseid": "w" });
    let reply = |result: &str| json!({ "action": "wakedevices", "responseid": "w", "result": result, "failed": true });
    assert_eq!(
        one(&mut admin, wake.clone()).await,
        reply("No network information for this device")
    );
    let netinfo = json!({ "action": "netinfo", "netif2": {
        "lo": [{ "mac": "00:00:00:00:00:00" }],
        "eth0": [{ "mac": "52:54:00:12:34:56", "family": "IPv4" }],
    }});
    w.domain()
        .store_agent_report(
            &pc.id,
            DeviceReport::NetInfo,
            &netinfo.to_string(),
            None,
            Default::default(),
        )
        .await
        .unwrap();
    // The lab's device is online: the administrator may wake in both groups.
    let mut waker = w.connect(&w.lab_pc);
    w.published();
    assert_eq!(
        one(&mut admin, wake.clone()).await,
        json!({ "action": "wakedevices", "responseid": "w",
                "result": "Used 1 device(s) to send wake packets" })
    );
    assert_eq!(
        sent(&mut waker),
        json!({ "action": "wakeonlan", "macs": ["52:54:00:12:34:56"] })
    );
    let events = w.published();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(!events[0].persist, "announced, not kept");
    assert_eq!(events[0].action, "wakedevices");
    // Without the wake right the device is "invalid", as if unknown.
    assert_eq!(one(&mut alice, wake).await, reply("Invalid nodeid"));
    let several = json!({ "action": "wakedevices", "nodeids": [pc.id, "node//nosuch"] });
    assert_eq!(one(&mut admin, several).await, ok("wakedevices"));
    assert_eq!(sent(&mut waker)["action"], "wakeonlan");
}

#[tokio::test]
async fn powertimeline_shows_the_connections_of_the_week() {
    let w = World::new().await;
    let pc = w.office_pc.clone();
    let mut alice = w.session(&w.alice).await;
    let ask = json!({ "action": "powertimeline", "nodeid": pc.id });
    // Nothing recorded: the current state, from now.
    let t = one(&mut alice, ask.clone()).await;
    let line = t["timeline"].as_array().unwrap();
    assert_eq!(
        (line.len(), &line[0], &line[2]),
        (3, &json!(0), &json!(0)),
        "{t}"
    );
    let on = LiveState {
        conn: 1,
        pwr: 1,
        connected_ms: now_ms(),
    };
    w.domain().announce_connection(&pc, on).await;
    // A later millisecond: changes are ordered by time.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    w.domain()
        .announce_connection(&pc, LiveState::default())
        .await;
    let t = one(&mut alice, ask).await;
    assert_eq!(t["nodeid"], pc.id.as_str());
    let line = t["timeline"].as_array().unwrap();
    assert_eq!(line.len(), 5, "{t}");
    assert_eq!(
        (&line[0], &line[2], &line[4]),
        (&json!(0), &json!(1), &json!(0))
    );
    let start = line[1].as_f64().unwrap();
    assert!((start * 1000.0 - now_ms() as f64).abs() < 60_000.0, "{t}");
    assert!(line[3].as_f64().unwrap() >= 0.0);
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "powertimeline", "nodeid": w.lab_pc.id })
        )
        .await,
        refused("powertimeline", "Invalid device id")
    );
}

#[tokio::test]
async fn toast_and_message_boxes_reach_the_devices_user() {
    let mut w = World::new().await;
    let pc = w.office_pc.clone();
    let mut admin = w.session(&w.admin).await;
    let mut alice = w.session(&w.alice).await;
    let toast =
        json!({ "action": "toast", "nodeids": [pc.id], "title": "T", "msg": "a \"b\"\n$(c)" });
    assert_eq!(
        one(&mut admin, toast.clone()).await,
        refused("toast", "Agent not connected")
    );
    let mut agent = w.connect(&pc);
    w.published();
    assert_eq!(one(&mut admin, toast.clone()).await, ok("toast"));
    assert_eq!(
        sent(&mut agent),
        json!({ "action": "toast", "title": "T", "msg": "a \"b\"\n$(c)",
                "sessionid": admin.session_id, "username": "admin", "userid": "user//admin" })
    );
    let e = w.published()[0].to_json();
    assert_eq!(
        (&e["msgid"], &e["msgArgs"]),
        (&json!(26), &json!(["T", "a \"b\"\n$(c)"]))
    );
    // No chat/notify right, or a device she cannot see: the same answer.
    assert_eq!(
        one(&mut alice, toast).await,
        refused("toast", "Access Denied")
    );
    let lab = json!({ "action": "toast", "nodeids": [w.lab_pc.id], "msg": "x" });
    assert_eq!(
        one(&mut alice, lab).await,
        refused("toast", "Access Denied")
    );
    // Without a title, the server's.
    let untitled = json!({ "action": "toast", "nodeids": [pc.id], "msg": "x", "title": 5 });
    assert_eq!(one(&mut admin, untitled).await, ok("toast"));
    assert_eq!(sent(&mut agent)["title"], "ironmesh");

    // A message box needs remote control, which she has.
    w.published();
    let boxed = json!({ "action": "msg", "type": "messagebox", "nodeid": pc.id, "title": "B",
                        "msg": "hello", "timeout": 0, "responseid": "m" });
    assert_eq!(
        one(&mut alice, boxed).await,
        json!({ "action": "msg", "responseid": "m", "result": "OK" })
    );
    let m = sent(&mut agent);
    assert_eq!(
        (&m["type"], &m["title"], &m["msg"], &m["timeout"]),
        (
            &json!("messagebox"),
            &json!("B"),
            &json!("hello"),
            &json!(0)
        )
    );
    let e = w.published()[0].to_json();
    assert_eq!(
        (&e["msgid"], &e["msg"]),
        (
            &json!(18),
            &json!("Displaying message box, title=B, message=hello")
        )
    );
}
