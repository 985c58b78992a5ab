//! Whether a built binary is older than the sources cargo built it from.
//!
//! cargo writes `<binary>.d` beside each binary it builds (`target/<profile>/<name>.d`): one
//! make-style line naming every local file the binary was compiled from, i.e. the `src/`
//! files of its package and of the workspace crates it depends on that were compiled in
//! (test-only modules are not), its `build.rs`, and what the build script watches
//! (`cargo:rerun-if-changed`, files or whole folders). Files the build script generated under
//! the target folder are left out: they are never newer than the binary they went into.
//! Editing any of the rest makes `cargo build` relink the binary, so "older than one of them"
//! means "stale" and never "up to date but untouched".

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// `Ok` when no source recorded for `binary` changed after it was built; otherwise which
/// one did.
pub(crate) fn check(binary: &Path) -> Result<(), String> {
    let built = modified(binary)
        .ok_or_else(|| format!("cannot read the modification time of {}", binary.display()))?;
    let dep_info = PathBuf::from(format!("{}.d", binary.display()));
    let text = std::fs::read_to_string(&dep_info).map_err(|e| {
        format!(
            "cannot read {} ({e}), the list of its sources cargo writes with it",
            dep_info.display()
        )
    })?;
    // <target>/<profile>/<name>: generated files live under <target>.
    let target = binary.parent().and_then(Path::parent).map(normalize);
    for source in sources(&text) {
        let source = normalize(&source);
        if target.as_ref().is_some_and(|t| source.starts_with(t)) {
            continue;
        }
        if let Some(newer) = newer_than(&source, built) {
            return Err(format!("{} changed after it was built", newer.display()));
        }
    }
    Ok(())
}

/// The dependencies named in a dep-info file (`target: dep dep …`, spaces in names escaped
/// with a backslash).
fn sources(dep_info: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in dep_info.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut current = String::new();
        let mut chars = deps.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                ' ' => {
                    if !current.is_empty() {
                        out.push(PathBuf::from(std::mem::take(&mut current)));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            out.push(PathBuf::from(current));
        }
    }
    out
}

/// `path` (or, for a folder, the first file in it) when it was modified after `built`. A
/// path that no longer exists is not a sign: a removed source is removed from a file that
/// named it, and that file is newer.
fn newer_than(path: &Path, built: SystemTime) -> Option<PathBuf> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_dir() {
        // The folder's own time changes when entries are added or removed.
        if meta.modified().is_ok_and(|m| m > built) {
            return Some(path.to_path_buf());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        return entries.iter().find_map(|e| newer_than(e, built));
    }
    meta.modified()
        .is_ok_and(|m| m > built)
        .then(|| path.to_path_buf())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `a/b/../c` -> `a/c`, without touching the file system (cargo records build-script paths
/// such as `crates/server/../../web/src`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn touch(path: &Path, at: SystemTime) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        if !path.exists() {
            std::fs::write(path, b"x").unwrap();
        }
        // A folder opens read-only; its owner may still set its times.
        let file = if path.is_dir() {
            std::fs::File::open(path)
        } else {
            std::fs::File::options().write(true).open(path)
        };
        file.unwrap().set_modified(at).unwrap();
    }

    #[test]
    fn reads_dep_info() {
        assert_eq!(
            sources("/t/debug/bin: /w/a.rs /w/with\\ space.rs /w/web\n\n/t/debug/other:\n"),
            [
                PathBuf::from("/w/a.rs"),
                PathBuf::from("/w/with space.rs"),
                PathBuf::from("/w/web"),
            ]
        );
        assert_eq!(
            normalize(Path::new("/w/crates/server/../../web/src")),
            PathBuf::from("/w/web/src")
        );
    }

    #[test]
    fn a_source_changed_after_the_build_makes_the_binary_stale() {
        let root = tempfile::tempdir().unwrap();
        let w = root.path();
        let then = SystemTime::now() - Duration::from_secs(3600);
        let build = then + Duration::from_secs(60);
        let later = build + Duration::from_secs(60);
        let bin = w.join("target/debug/server");
        for f in [
            "crates/server/src/main.rs",
            "crates/core/src/lib.rs",
            "web/src/app.ts",
        ] {
            touch(&w.join(f), then);
        }
        touch(&w.join("web/src"), then);
        touch(&w.join("target/debug/build/x/out/generated.rs"), later);
        std::fs::write(
            w.join("target/debug/server.d"),
            format!(
                "{0}/target/debug/server: {0}/crates/server/src/main.rs {0}/crates/core/src/lib.rs \
                 {0}/crates/server/../../web/src {0}/target/debug/build/x/out/generated.rs \
                 {0}/crates/gone.rs\n",
                w.display()
            ),
        )
        .unwrap();
        touch(&bin, build);
        // Generated files and removed ones do not count.
        assert_eq!(check(&bin), Ok(()));
        touch(&w.join("crates/core/src/lib.rs"), later);
        let why = check(&bin).unwrap_err();
        assert!(
            why.contains("crates/core/src/lib.rs changed after"),
            "{why}"
        );
        touch(&w.join("crates/core/src/lib.rs"), then);
        // A file in a watched folder.
        touch(&w.join("web/src/app.ts"), later);
        let why = check(&bin).unwrap_err();
        assert!(why.contains("web/src/app.ts changed after"), "{why}");
        // Rebuilt: fresh again.
        touch(&bin, later + Duration::from_secs(1));
        assert_eq!(check(&bin), Ok(()));
        // No dep-info: cannot tell, so no.
        std::fs::remove_file(w.join("target/debug/server.d")).unwrap();
        assert!(check(&bin).unwrap_err().contains("server.d"));
    }
}
