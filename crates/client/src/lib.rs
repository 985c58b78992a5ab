//! Client side of ironmesh's protocols.

pub mod connect;
pub mod control;
pub mod desktop;
pub mod relay;

pub use connect::{connect, tls_config, Socket};
