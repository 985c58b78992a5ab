//! JavaScript cores for stock MeshCentral agents (docs/protocol/agent.md §4.1). The stock agent
//! does nothing useful without one. ironmesh can assemble MeshCentral's own core at start-up from a
//! `meshcentral` npm package the operator installed (`--meshcentral-dir`); nothing of it is stored
//! in this repository.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ironmesh_proto::agent;

use ironmesh_proto::agent::sha384;

/// One core, ready to send.
pub struct Core {
    /// SHA-384 of the whole blob (its 4-byte zero prefix included).
    pub hash: [u8; 48],
    /// The complete command 10 frame.
    pub frame: bytes::Bytes,
    /// Name for logs.
    pub name: String,
}

impl Core {
    pub fn from_blob(name: &str, blob: Vec<u8>) -> Core {
        let hash = sha384(&blob);
        Core {
            hash,
            frame: agent::core_module(&hash, &blob).into(),
            name: name.to_string(),
        }
    }
}

/// Cores by agent architecture number.
#[derive(Default)]
pub struct CoreProvider {
    by_agent_id: HashMap<u32, Arc<Core>>,
}

impl CoreProvider {
    pub fn core_for(&self, agent_id: u32) -> Option<Arc<Core>> {
        self.by_agent_id.get(&agent_id).cloned()
    }

    /// Assembles MeshCentral's core for the Linux x86-64 agent (architecture 6, core
    /// `linux-amt`) from an installed `meshcentral` package: the module files of
    /// `agents/modules_meshcore/` registered one per line, then `agents/meshcore.js`.
    pub fn from_meshcentral(dir: &Path) -> anyhow::Result<CoreProvider> {
        let blob = assemble_linux_core(&dir.join("agents"))?;
        let core = Arc::new(Core::from_blob("meshcentral linux-amt", blob));
        tracing::info!(
            bytes = core.frame.len(),
            "assembled the MeshCentral core for Linux agents"
        );
        let mut by_agent_id = HashMap::new();
        by_agent_id.insert(LINUX_X86_64, core);
        Ok(CoreProvider { by_agent_id })
    }
}

/// Architecture number of the Linux x86-64 agent.
pub const LINUX_X86_64: u32 = 6;

/// Builds the blob: 4 zero bytes, a module registry header, one registration per module
/// file in byte order of file names (Windows-only `win-*` modules left out), then the core
/// script itself. Module sources become JavaScript string literals: the eight characters
/// below are escaped, other control and non-ASCII bytes are dropped (JSON files keep
/// non-ASCII text).
fn assemble_linux_core(agents: &Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    let modules_dir = agents.join("modules_meshcore");
    let mut names: Vec<String> = std::fs::read_dir(&modules_dir)
        .with_context(|| format!("reading {}", modules_dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut text = String::from("var addedModules = [];\r\n");
    for file in &names {
        let path = modules_dir.join(file);
        let lower = file.to_ascii_lowercase();
        if let Some(stem) = lower.strip_suffix(".json").map(|_| &file[..file.len() - 5]) {
            let source = std::fs::read_to_string(&path)?;
            text.push_str(&format!(
                "var {stem} = JSON.parse('{}');\r\n",
                escape(&source, true)
            ));
        } else if let Some(stem) = lower.strip_suffix(".js").map(|_| &file[..file.len() - 3]) {
            let stem = stem.strip_suffix(".min").unwrap_or(stem);
            if stem.starts_with("win-") {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            let source: String = bytes.iter().map(|b| *b as char).collect();
            text.push_str(&format!(
                "try {{ addModule(\"{stem}\", \"{}\"); addedModules.push(\"{stem}\"); }} catch (ex) {{ }}\r\n",
                escape(&source, false)
            ));
        }
    }
    let core_path = agents.join("meshcore.js");
    text.push_str(
        &std::fs::read_to_string(&core_path)
            .with_context(|| format!("reading {}", core_path.display()))?,
    );
    let mut blob = vec![0u8; 4];
    blob.extend_from_slice(text.as_bytes());
    Ok(blob)
}

/// Escapes text into a JavaScript string literal body. With `keep_non_ascii` false,
/// characters outside 32..=127 that have no escape are dropped.
fn escape(source: &str, keep_non_ascii: bool) -> String {
    let mut out = String::with_capacity(source.len() + source.len() / 8);
    for c in source.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if keep_non_ascii || (32..=127).contains(&(c as u32)) => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_a_javascript_literal() {
        assert_eq!(
            escape("a'b\"c\\d\r\n\t\u{8}\u{c}", false),
            "a\\'b\\\"c\\\\d\\r\\n\\t\\b\\f"
        );
        assert_eq!(escape("é\u{1}x", false), "x");
        assert_eq!(escape("é", true), "é");
    }

    #[test]
    fn core_frame_carries_hash_of_whole_blob() {
        let core = Core::from_blob("t", vec![0, 0, 0, 0, b'x']);
        assert_eq!(&core.frame[..4], &[0, 10, 0, 0]);
        assert_eq!(&core.frame[4..52], &sha384(&[0, 0, 0, 0, b'x'])[..]);
    }
}
