//! Builds the web console (`web/`, TypeScript + Vite) and embeds its files in the server.
//!
//! `npm ci` runs when `web/node_modules` is missing or older than `package-lock.json`; then
//! `tsc --noEmit` (type check) and `vite build` write to `$OUT_DIR/web`. The generated
//! `console_assets.rs` holds one `(path, content type, bytes)` entry per file.
//! `IRONMESH_WEB_DIST=<folder>` embeds an already built console instead (no Node.js needed).

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let web = manifest.join("../../web");
    for input in [
        "src",
        "public",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=IRONMESH_WEB_DIST");

    let dist = match env::var_os("IRONMESH_WEB_DIST") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dist = out_dir.join("web");
            build_console(&web, &dist);
            dist
        }
    };
    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    assert!(
        files.iter().any(|(p, _)| p == "/index.html"),
        "the web console build produced no index.html in {}",
        dist.display()
    );
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
    std::fs::write(out_dir.join("console_assets.rs"), table).expect("write console_assets.rs");
}

fn build_console(web: &Path, dist: &Path) {
    let lock = web.join("package-lock.json");
    let installed = web.join("node_modules/.package-lock.json");
    let stale = match (modified(&installed), modified(&lock)) {
        (Some(i), Some(l)) => i < l,
        _ => true,
    };
    if stale {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(web),
            "npm ci",
        );
    }
    run(
        Command::new("node")
            .args(["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."])
            .current_dir(web),
        "tsc --noEmit (type check of web/src)",
    );
    run(
        Command::new("node")
            .args([
                "node_modules/vite/bin/vite.js",
                "build",
                "--logLevel",
                "warn",
            ])
            .env("IRONMESH_WEB_OUT", dist)
            .current_dir(web),
        "vite build",
    );
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("building the web console: `{what}` failed ({status})"),
        Err(e) => panic!(
            "building the web console: cannot run `{what}`: {e}. The server embeds its web \
             console, built with Node.js (18 or later) and npm: install them (Debian: \
             `apt install nodejs npm`), or set IRONMESH_WEB_DIST to an already built console."
        ),
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
