//! ironmesh server library. The binary (`main.rs`) only parses arguments and calls
//! [`cli::run`].
//!
//! Layers, each using only those above it (checked by `tests::layers` below):
//! 0. `config`, `locks`: settings and plumbing;
//! 1. `identity`, `agent_cores`, `endpoint`, `metrics` (what every endpoint shares);
//! 2. `tls`, `live` (what is connected now) and `auth` (who is calling);
//! 3. `state` (one server's shared state);
//! 4. `tunnel` (asking an agent to join a relay);
//! 5. the endpoints, which never use each other: `agents` (`/agent.ashx`), `control`
//!    (`/control.ashx`), `relay` (`/meshrelay.ashx`), `wifidog` (gateways) and `web`
//!    (pages, console, downloads, the TLS listener);
//! 6. `routes`, then `server`, then `cli`: wiring.
//!
//! The rules and the data are in the `ironmesh_core` crate, whose store the server cannot
//! reach around its domain methods.

pub mod agent_cores;
pub mod agents;
pub mod auth;
pub mod cli;
pub mod config;
pub mod control;
pub mod endpoint;
pub mod identity;
pub mod live;
pub mod locks;
pub mod metrics;
pub mod relay;
pub mod routes;
pub mod server;
pub mod state;
pub mod tls;
pub mod tunnel;
pub mod web;
pub mod wifidog;

#[cfg(test)]
mod tests {
    /// The layer of every top-level module: a module may use only modules of lower layers,
    /// so the modules form no cycle and endpoints (one layer) never use each other.
    const LAYERS: &[(&str, u8)] = &[
        ("config", 0),
        ("locks", 0),
        ("identity", 1),
        ("agent_cores", 1),
        ("endpoint", 1),
        ("metrics", 1),
        ("tls", 2),
        ("live", 2),
        ("auth", 2),
        ("state", 3),
        ("tunnel", 4),
        ("agents", 5),
        ("control", 5),
        ("relay", 5),
        ("wifidog", 5),
        ("web", 5),
        ("routes", 6),
        ("server", 7),
        ("cli", 8),
    ];

    fn layer(module: &str) -> u8 {
        LAYERS
            .iter()
            .find(|(name, _)| *name == module)
            .unwrap_or_else(|| panic!("module {module} has no layer in LAYERS"))
            .1
    }

    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn layers() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut violations = Vec::new();
        for file in files {
            let relative = file.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap().as_os_str();
            let module = first.to_str().unwrap().trim_end_matches(".rs");
            if module == "lib" || module == "main" {
                continue;
            }
            // Code only: a comment may point the reader anywhere.
            let text: String = std::fs::read_to_string(&file)
                .unwrap()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for (at, _) in text.match_indices("crate::") {
                let used: String = text[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used != module && layer(&used) >= layer(module) {
                    violations.push(format!("{} uses crate::{used}", relative.display()));
                }
            }
        }
        assert!(
            violations.is_empty(),
            "modules using modules of their own or a higher layer:\n{}",
            violations.join("\n")
        );
    }
}
