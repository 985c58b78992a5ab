//! What the server does, independent of how it is reached (control channel, web pages,
//! CLI) and of which database holds it. Transports call these functions; they never write
//! to the store themselves.

pub mod access;
pub mod accounts;
pub mod devices;
pub mod events;
pub mod groups;

use crate::store::{Outage, StoreError};

/// A refusal with a message a person can act on. The texts of the common cases are the
/// ones `meshctrl.js` users know from MeshCentral (control spec §9).
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("Access denied")]
    Denied,
    /// Unknown id, or an id the caller may not see (indistinguishable on purpose).
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(&'static str),
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

/// The domain services: the store plus the event bus every change is announced on.
#[derive(Clone)]
pub struct Domain {
    pub store: crate::store::Store,
    pub events: events::EventBus,
}
