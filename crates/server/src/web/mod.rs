//! The HTTPS side that is not a WebSocket endpoint: the TLS listener, pages (login,
//! logout, health), monitoring (`/metrics`, liveness and readiness), the embedded console, install downloads and response headers. The
//! router of every path is `crate::routes`.

pub mod console;
pub mod headers;
pub mod install;
pub mod listener;
pub mod monitoring;
pub mod pages;
pub mod recordings;
pub mod sso;
