//! ironmesh's domain: what the server does, independent of how it is reached (control
//! channel, web pages, CLI) and of which database holds it.
//!
//! The store is private to this crate: the server's transports can only read and change
//! data through [`Domain`]'s methods, which apply the rules (rights, validation, events).
//! [`model`] names the records those methods hand out.

pub mod access;
pub mod accounts;
pub mod device_changes;
pub mod devices;
pub mod events;
pub mod gateways;
pub mod groups;
pub mod observe;
pub mod power;
pub mod recordings;
pub mod sessions;
pub mod sso;
mod store;
pub mod twofactor;
pub mod usergroups;

use crate::store::{Outage, Store, StoreError};

/// The records the domain reads and writes, as transports see them.
pub mod model {
    pub use crate::store::devices::DeviceReport;
    pub use crate::store::events::EventFilter;
    pub use crate::store::gateways::{GatewayRecord, PortalSession};
    pub use crate::store::{
        now_ms, DeviceGroup, DeviceLink, DeviceRecord, EventRecord, GroupMember, LoginToken,
        Outage, Passkey, RecordingRecord, User, UserGroup, UserGroupLink,
    };
}

/// A refusal with a message a person can act on. The texts of the common cases are the
/// ones `meshctrl.js` users know from MeshCentral (docs/protocol/control.md §9).
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("Access denied")]
    Denied,
    /// A refusal worded as MeshCentral words it for one action ("Permission denied",
    /// "Invalid group identifier", …): meshctrl prints the text and scripts compare it.
    #[error("{0}")]
    Refused(&'static str),
    /// Unknown id, or an id the caller may not see (indistinguishable on purpose).
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(&'static str),
    /// The site requires a second factor and the caller's account has none yet.
    #[error("This server requires a second factor: add an authenticator app or a passkey to your account first")]
    SecondFactorRequired,
    /// The database cannot take the request now (unreachable, or its storage full); the
    /// store has logged it. Nothing was changed, and retrying later works.
    #[error("{0}")]
    Unavailable(Outage),
    #[error("Internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e.outage() {
            Some(outage) => DomainError::Unavailable(outage),
            None => DomainError::Internal(e.into()),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;

/// Random bytes from the OS generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    ironmesh_proto::ids::hex_upper(bytes).to_ascii_lowercase()
}

/// Site-wide rules the server's configuration sets.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// New accounts may create device groups; otherwise they get the NO_NEW_GROUPS site
    /// right (an administrator can lift it per account).
    pub new_users_create_groups: bool,
    /// Every account signing in with a password must have a second factor: one without
    /// may only add one (accounts of single sign-on are exempt: their provider decides).
    pub second_factor_required: bool,
}

/// The domain services: the store plus the event bus every change is announced on.
/// Cheap to clone (both are handles).
#[derive(Clone)]
pub struct Domain {
    store: Store,
    /// Live events: consoles subscribe here; changes are announced with [`Domain::publish`].
    pub events: events::EventBus,
    policy: std::sync::Arc<Policy>,
}

impl Domain {
    /// Connects to the database (`sqlite://…` or `postgres://…`) and brings its schema up to
    /// date.
    pub async fn open(database_url: &str) -> anyhow::Result<Domain> {
        let store = Store::open(database_url).await?;
        Ok(Domain {
            events: events::EventBus::new(store.clone()),
            store,
            policy: Default::default(),
        })
    }

    /// The same domain under `policy`.
    pub fn with_policy(mut self, policy: Policy) -> Domain {
        self.policy = std::sync::Arc::new(policy);
        self
    }

    /// Closes the database connections (after the last request has finished).
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Stores (if persistent) and broadcasts an event.
    pub async fn publish(&self, event: events::Event) {
        self.events.publish(event).await;
    }

    /// The server-wide key that seals tokens, `len` random bytes created by the first server
    /// to start on this database and shared by every server after it.
    pub async fn sealing_key(&self, len: usize) -> DomainResult<Vec<u8>> {
        const SEALING_KEY: &str = "login_cookie_key";
        let fresh = hex(&random_key(len));
        let stored = self.store.setting_or_insert(SEALING_KEY, &fresh).await?;
        ironmesh_proto::ids::decode_hex(&stored)
            .filter(|k| k.len() == len)
            .ok_or_else(|| {
                DomainError::Internal(anyhow::anyhow!(
                    "the stored token-sealing key is not {len} bytes of hex"
                ))
            })
    }

    /// The database's own consistency check: `Ok("ok")` when it finds nothing wrong,
    /// otherwise its findings.
    pub async fn check_integrity(&self) -> DomainResult<String> {
        Ok(self.store.integrity_check().await?)
    }

    /// Whether the database answers a trivial query within `within` (for readiness
    /// checks): `Unavailable` when it does not, whatever the pool's own wait.
    pub async fn ping(&self, within: std::time::Duration) -> DomainResult<()> {
        match tokio::time::timeout(within, self.store.ping()).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(DomainError::Unavailable(Outage::Unreachable)),
        }
    }
}

fn random_key(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut key = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}
