//! Wire formats for ironmesh: pure data and parsing, no I/O.
//!
//! Protocol facts cite the fact sheets in `docs/protocol/` (`agent.md`, `control.md`,
//! `desktop.md`, `wifidogx.md`) by section.

pub mod agent;
pub mod agent_handshake;
pub mod control;
pub mod desktop;
pub mod ids;
pub mod meshauth;
pub mod msh;
pub mod relay;
pub mod rights;
pub mod websocket;
pub mod wifidog;
