//! Builds the web app (`web/`) with Vite into OUT_DIR and generates a table of its files,
//! so `cargo run -p baton` from a fresh clone serves the app with no extra step.
//!
//! `BATON_WEB_DIST=<dir>` embeds an already built folder instead (for images and machines
//! without Node.js).
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let web = manifest.join("../../web");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-env-changed=BATON_WEB_DIST");
    let dist = match env::var_os("BATON_WEB_DIST") {
        Some(dir) => PathBuf::from(dir),
        None => {
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
            let dist = out.join("dist");
            build_with_vite(&web, &dist);
            dist
        }
    };
    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    if !files.iter().any(|(route, _)| route == "/index.html") {
        panic!(
            "{} holds no index.html: not a built web app",
            dist.display()
        );
    }
    let mut table = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (route, path) in &files {
        writeln!(
            table,
            "    ({route:?}, include_bytes!({:?})),",
            path.display()
        )
        .unwrap();
    }
    table.push_str("];\n");
    fs::write(out.join("files.rs"), table).expect("writing files.rs");
}

fn build_with_vite(web: &Path, dist: &Path) {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let installed = web.join("node_modules/.package-lock.json");
    let stale = match (
        fs::metadata(&installed),
        fs::metadata(web.join("package-lock.json")),
    ) {
        (Ok(have), Ok(want)) => match (have.modified(), want.modified()) {
            (Ok(have), Ok(want)) => want > have,
            _ => false,
        },
        _ => true,
    };
    if stale || !web.join("node_modules/vite").exists() {
        run(
            Command::new(npm)
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(web),
            "npm ci",
        );
    }
    run(
        Command::new("node")
            .arg("node_modules/vite/bin/vite.js")
            .args(["build", "--logLevel", "warn", "--emptyOutDir", "--outDir"])
            .arg(dist)
            .current_dir(web),
        "vite build",
    );
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{what} failed ({s}) while building the web app in web/"),
        Err(e) => panic!(
            "{what} could not start ({e}): building the web app needs Node.js 20.19+ and npm \
             on PATH, or BATON_WEB_DIST pointing at an already built web/dist"
        ),
    }
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            let route = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            files.push((route, fs::canonicalize(&path).expect("canonical path")));
        }
    }
}
