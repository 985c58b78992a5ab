//! Embeds the web console (`web/`, TypeScript + Vite) in the server.
//!
//! The console is built beforehand by `scripts/build-web` (`scripts/serve` and `scripts/test`
//! run it); this script needs neither Node.js nor the network and writes only to `OUT_DIR`.
//! It embeds, in this order:
//! - `IRONMESH_WEB_DIST=<folder>`, an already built console (absolute, or relative to
//!   `crates/server`);
//! - `web/dist/`, when it holds an `index.html`;
//! - else a placeholder page (with `web/public/login.css` for the sign-in page) that says the
//!   console was not built and how to build it, and a `cargo:warning` saying the same.
//!
//! The generated `console_assets.rs` holds one `(path, content type, bytes)` entry per file.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const BUILD_COMMAND: &str = "scripts/build-web";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let web = manifest.join("../../web");
    println!("cargo:rerun-if-env-changed=IRONMESH_WEB_DIST");

    let files = match env::var_os("IRONMESH_WEB_DIST") {
        Some(dir) => {
            let dist = manifest.join(dir);
            println!("cargo:rerun-if-changed={}", dist.display());
            assert!(
                dist.is_dir(),
                "IRONMESH_WEB_DIST={} is not a folder (build the console with {BUILD_COMMAND})",
                dist.display()
            );
            let files = collect_dist(&dist);
            assert!(
                has_index(&files),
                "IRONMESH_WEB_DIST={} holds no index.html (build the console with {BUILD_COMMAND})",
                dist.display()
            );
            files
        }
        None => {
            let dist = web.join("dist");
            if dist.is_dir() {
                // Cargo scans the folder: a rebuilt (or removed) console is picked up.
                println!("cargo:rerun-if-changed={}", dist.display());
                let files = collect_dist(&dist);
                if has_index(&files) {
                    files
                } else {
                    warn(&format!(
                        "web/dist holds no index.html (an unfinished build?): embedding a \
                         placeholder page; build the console with {BUILD_COMMAND}"
                    ));
                    placeholder(&web, &out_dir)
                }
            } else {
                // A missing path would make Cargo rerun this script on every build, so watch
                // web/ itself, which changes when web/dist appears.
                println!("cargo:rerun-if-changed={}", web.display());
                warn(&format!(
                    "the web console is not built (no web/dist): the server serves a \
                     placeholder page at /; build the console with {BUILD_COMMAND}, then \
                     rebuild the server"
                ));
                placeholder(&web, &out_dir)
            }
        }
    };

    let mut table = String::from("pub static ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for (url, file) in &files {
        writeln!(
            table,
            "    ({url:?}, {:?}, include_bytes!({:?})),",
            content_type(url),
            file.display().to_string()
        )
        .unwrap();
    }
    table.push_str("];\n");
    write_if_changed(&out_dir.join("console_assets.rs"), table.as_bytes());
}

fn warn(message: &str) {
    println!("cargo:warning={message}");
}

fn has_index(files: &[(String, PathBuf)]) -> bool {
    files.iter().any(|(p, _)| p == "/index.html")
}

/// Every file of a built console, by URL path, sorted.
fn collect_dist(dist: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    collect(dist, dist, &mut files);
    files.sort();
    files
}

/// The page served at `/` when no console was built, and the sign-in page's style sheet.
fn placeholder(web: &Path, out_dir: &Path) -> Vec<(String, PathBuf)> {
    let dir = out_dir.join("placeholder");
    std::fs::create_dir_all(&dir).expect("create the placeholder folder in OUT_DIR");
    let index = dir.join("index.html");
    write_if_changed(&index, PLACEHOLDER_HTML.as_bytes());
    let mut files = vec![("/index.html".to_string(), index)];
    let login_css = web.join("public/login.css");
    if login_css.is_file() {
        let abs = login_css.canonicalize().unwrap_or(login_css);
        files.push(("/login.css".to_string(), abs));
    }
    files.sort();
    files
}

// No inline script or style: the console's CSP applies to this page too. `<head>` is where
// the console inserts its style nonce.
const PLACEHOLDER_HTML: &str = r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>ironmesh: web console not built</title>
    <link rel="stylesheet" href="/login.css">
  </head>
  <body>
    <main id="console-not-built">
      <h1>Web console not built</h1>
      <p>This ironmesh server was built without its web console: <code>web/dist/</code> did
        not exist and <code>IRONMESH_WEB_DIST</code> was not set.</p>
      <p>Build the console with <code>scripts/build-web</code> (Node.js 20 or later and npm),
        then rebuild the server (<code>cargo build -p ironmesh-server</code>).
        <code>scripts/serve</code> does both.</p>
      <p><a href="/logout">Sign out</a></p>
    </main>
  </body>
</html>
"#;

/// Writes only when the content differs, so an unchanged file keeps its timestamp.
fn write_if_changed(path: &Path, content: &[u8]) {
    if std::fs::read(path).ok().as_deref() != Some(content) {
        std::fs::write(path, content)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the web console build {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let abs = path.canonicalize().unwrap_or(path);
            out.push((format!("/{rel}"), abs));
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
