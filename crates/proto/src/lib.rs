//! Wire formats for ironmesh: pure data and parsing, no I/O.
//!
//! Protocol facts cite the fact sheets in `shared/spec/` (`meshcentral-control.md`,
//! `meshcentral-agent.md`) by section.

pub mod agent;
pub mod control;
pub mod ids;
pub mod meshauth;
pub mod msh;
pub mod relay;
pub mod rights;
pub mod wifidog;
