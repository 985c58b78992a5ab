//! ironmesh server library. The binary (`main.rs`) only parses arguments and calls
//! [`cli::run`].
//!
//! Layers: `config`/`identity`/`tls` prepare a start; `store` persists; `domain` holds the
//! rules (accounts, rights, device groups, events) without knowing about sockets or SQL
//! dialects; `web` and `control` are transports that call into `domain`.

pub mod agents;
pub mod auth;
pub mod cli;
pub mod config;
pub mod consoles;
pub mod control;
pub mod domain;
pub mod identity;
pub mod relay;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod web;
pub mod wifidog;
