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
use ironmesh_core::events::{iso_time, Event};
use ironmesh_core::gateways::{AdmissionRule, GatewayReport};
use ironmesh_core::groups::MTYPE_AGENT;
use ironmesh_core::model::{now_ms, DeviceGroup, DeviceRecord, DeviceReport, User};
use ironmesh_core::{hex, random_bytes, Domain};
use ironmesh_proto::agent::{sha384, AuthInfo};
use ironmesh_proto::control::Request;
use ironmesh_proto::ids::{b64_at_dollar, decode_b64_at_dollar, hex_upper, id_key};
use ironmesh_proto::rights::{MeshRights, SiteRights};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::{dispatch, ACTION_NAMES};
use crate::agent_cores::CoreProvider;
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
    for (name, bytes) in identity_files() {
        std::fs::write(data_dir.join(name), bytes).unwrap();
    }
    let config = Config::resolve(
        data_dir,
        None,
        Overrides {
            database_url: Some(memory_database_url()),
            fast_cert: true,
            ..Default::default()
        },
    )
    .unwrap();
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
        let peer: SocketAddr = PEER.parse().unwrap();
        ControlSession {
            state: self.state.clone(),
            actor: actor(self.domain(), user).await,
            session_id: format!("{}/{}", user.id, hex(&random_bytes::<20>())),
            peer,
            client: crate::auth::Client {
                ip: peer.ip(),
                user_agent: None,
            },
            web_cookie: None,
            outbox: crate::live::consoles::Outbox::new(crate::live::consoles::OUTBOX_LIMIT).0,
            credentials_ms: user.password_changed_ms,
        }
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
/// the caller's rights reloaded, then dispatched. Returns the replies in order.
async fn call(s: &mut ControlSession, request: Value) -> Vec<Value> {
    let req = Request::parse(&request.to_string()).expect("a valid envelope");
    s.actor = s
        .state
        .domain
        .actor(&s.actor.user.id)
        .await
        .unwrap()
        .expect("the caller's account exists");
    dispatch(s, &req).await
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
    json!({
        "_id": user.id,
        "name": user.name,
        "creation": user.created_ms / 1000,
        "links": links,
        "siteadmin": user.site_rights,
        "passchange": user.password_changed_ms / 1000,
    })
}

/// A group as `meshes` shows it.
fn group_view(group: &DeviceGroup, links: Value) -> Value {
    json!({
        "type": "mesh",
        "_id": group.id,
        "name": group.name,
        "mtype": 2,
        "desc": group.description,
        "flags": 0,
        "consent": 0,
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
        "host": device.host,
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
                "port": 4443,
                "https": true,
                "product": "ironmesh",
                "version": env!("CARGO_PKG_VERSION"),
                "serverTime": 0,
                "startTime": w.state.started_ms,
                "tlshash": hex_upper(&identity.web.cert_hash),
                "agentCertHash": b64_at_dollar(&identity.agent_server.server_id),
                "features": 0,
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
    let w = World::new().await;
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
        json!({ "action": "adduser", "responseid": "a", "result": "ok", "userid": "user//carol" })
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

    let carol = w.domain().actor("user//carol").await.unwrap().unwrap().user;
    assert_eq!(
        listed_user(&mut manager, "user//carol").await,
        json!({
            "_id": "user//carol",
            "name": "Carol",
            "creation": carol.created_ms / 1000,
            "links": {},
            "siteadmin": 0,
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
            "links": {},
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
                group_view(&w.lab, json!({ "user//admin": { "name": "admin", "rights": FULL } })),
                group_view(&w.office, office_links),
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
            "result": "Nothing done: Unknown user user//ghost",
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

    // removemeshuser
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
        refused("removemeshuser", "User is not a member of this group")
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
        refused("deletemesh", "Invalid group id")
    );
    let mut admin = w.session(&w.admin).await;
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
        refused(
            "editmesh",
            "Several device groups have this name; use the group id"
        )
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
        json!({ "action": "getsysinfo", "noinfo": true, "nodeid": pc.id, "rights": ALICE_RIGHTS })
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
            "rights": ALICE_RIGHTS,
        })
    );
    let mut admin = w.session(&w.admin).await;
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

#[tokio::test]
async fn events_lists_what_the_caller_may_see() {
    let mut w = World::new().await;
    let mut alice = w.session(&w.alice).await;
    let created = one(
        &mut alice,
        json!({ "action": "createmesh", "meshname": "Home" }),
    )
    .await;
    let home = created["meshid"].as_str().unwrap().to_string();
    let published = w.published();
    let persisted = newest_first(&published);
    assert!(persisted.len() >= 10, "{persisted:?}");

    let mut admin = w.session(&w.admin).await;
    assert_eq!(
        one(&mut admin, json!({ "action": "events", "responseid": "e" })).await,
        json!({ "action": "events", "responseid": "e", "events": persisted })
    );
    assert_eq!(
        one(&mut admin, json!({ "action": "events", "limit": 2 })).await,
        json!({ "action": "events", "events": persisted[..2] })
    );

    // Alice: events she caused and events of her groups.
    let mine: Vec<Arc<Event>> = published
        .iter()
        .filter(|e| {
            e.user_id.as_deref() == Some("user//alice")
                || e.group_id.as_deref() == Some(w.office.id.as_str())
                || e.group_id.as_deref() == Some(home.as_str())
        })
        .cloned()
        .collect();
    assert_eq!(
        one(&mut alice, json!({ "action": "events" })).await,
        json!({ "action": "events", "events": newest_first(&mine) })
    );
    // Of one device.
    let added = published
        .iter()
        .find(|e| e.action == "addnode" && e.node_id.as_deref() == Some(w.office_pc.id.as_str()))
        .unwrap();
    assert_eq!(
        one(
            &mut alice,
            json!({ "action": "events", "nodeid": w.office_pc.id })
        )
        .await,
        json!({
            "action": "events",
            "nodeid": w.office_pc.id,
            "events": [{
                "etype": "node",
                "action": "addnode",
                "msg": "Added device office-pc",
                "time": iso_time(added.time_ms),
                "meshid": w.office.id,
                "nodeid": w.office_pc.id,
                "node": node_view(&w.office_pc),
            }],
        })
    );
    // Of one user (`user` is what meshctrl sends).
    let by_alice: Vec<Arc<Event>> = published
        .iter()
        .filter(|e| e.user_id.as_deref() == Some("user//alice"))
        .cloned()
        .collect();
    assert_eq!(by_alice.len(), 1);
    for request in [
        json!({ "action": "events", "userid": "alice" }),
        json!({ "action": "events", "user": "user//alice" }),
    ] {
        assert_eq!(
            one(&mut admin, request).await,
            json!({ "action": "events", "events": newest_first(&by_alice) })
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn authcookie_seals_both_relay_tokens() {
    let w = World::new().await;
    let mut alice = w.session(&w.alice).await;
    let reply = one(
        &mut alice,
        json!({ "action": "authcookie", "responseid": "c" }),
    )
    .await;
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
    assert_eq!(
        open("cookie"),
        json!({ "userid": "user//alice", "domainid": "", "ip": "127.0.0.1" })
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
    let w = World::new().await;
    let pc = &w.office_pc;
    let mut alice = w.session(&w.alice).await;
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

    let mut agent = w.connect(pc);
    assert_eq!(
        one(&mut alice, uptime).await,
        json!({ "action": "runcommands", "responseid": "r", "result": "OK" })
    );
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
}

/// Every device is checked before the command runs on any: one forbidden device refuses
/// the whole request, whatever its place in the list.
#[tokio::test]
async fn runcommands_with_a_forbidden_device_runs_nowhere() {
    let w = World::new().await;
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
    assert!(w.state.gateways.note_pending("gw-1", report, 1_700_000_000_000));
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
    let device_requests: [Build; 7] = [
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
    ];
    for request in requests {
        let action = request["action"].as_str().unwrap().to_string();
        assert_eq!(
            one(&mut bob, request.clone()).await,
            refused(&action, "Access denied"),
            "{request}"
        );
    }
    // A site right the caller lacks also blocks creating groups.
    let mut admin = w.session(&w.admin).await;
    one(
        &mut admin,
        json!({ "action": "edituser", "userid": "bob", "siteadmin": SiteRights::NO_NEW_GROUPS }),
    )
    .await;
    assert_eq!(
        one(
            &mut bob,
            json!({ "action": "createmesh", "meshname": "Mine" })
        )
        .await,
        refused("createmesh", "Access denied")
    );
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
