//! ironmesh-agent as a library: the binary wires these together; the benchmark and tests
//! reuse the handshake and identity to simulate many agents.

pub mod backoff;
pub mod commands;
pub mod desktop;
pub mod handshake;
pub mod identity;
pub mod notify;
pub mod power;
pub mod reports;
pub mod run;
pub mod settings;
pub mod tunnel;
