//! Embeds the connector templates of `plugboard new` in the binary.
//!
//! The templates *are* the example connectors (`connectors/tasks-<lang>`),
//! so the code a new project starts from is the code CI builds and tests.
//! Also embedded: the WIT package (`wit/`) and, for Rust projects, the
//! guest SDK's sources (vendored into each new Rust project, which then
//! builds without this repository).
//!
//! Build outputs and installed tools are skipped: every name listed in a
//! template's `.gitignore` (plain names only), plus `.wasm` files. Cargo is
//! told to rerun when an embedded file changes; a file *added* to a
//! template needs a touch of this script (watching whole directories would
//! rescan `node_modules` on every build).

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

const LANGS: &[(&str, &str)] = &[
    ("rust", "connectors/tasks-rust"),
    ("js", "connectors/tasks-js"),
    ("python", "connectors/tasks-python"),
    ("c", "connectors/tasks-c"),
];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("host/ is in the workspace")
        .to_path_buf();
    let mut out = String::new();
    out.push_str("/// (language, path inside the project, contents) of every template file.\n");
    out.push_str("pub static TEMPLATES: &[(&str, &str, &[u8])] = &[\n");
    for (lang, dir) in LANGS {
        let dir = root.join(dir);
        for file in files(&dir) {
            emit(&mut out, Some(lang), &dir, &file);
        }
    }
    out.push_str("];\n\n/// (path inside `wit/`, contents) of the WIT package.\n");
    out.push_str("pub static WIT: &[(&str, &str, &[u8])] = &[\n");
    let wit = root.join("wit");
    for file in files(&wit) {
        emit(&mut out, None, &wit, &file);
    }
    out.push_str("];\n\n/// (path inside the SDK crate, contents) of the Rust guest SDK.\n");
    out.push_str("pub static SDK: &[(&str, &str, &[u8])] = &[\n");
    let sdk = root.join("guest-sdk");
    for file in files(&sdk)
        .into_iter()
        .filter(|f| !f.ends_with("Cargo.toml"))
    {
        emit(&mut out, None, &sdk, &file);
    }
    out.push_str("];\n");
    let dest = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("templates.rs");
    fs::write(&dest, out).expect("writing templates.rs");
    println!("cargo:rerun-if-changed=build.rs");
}

fn emit(out: &mut String, lang: Option<&str>, base: &Path, file: &Path) {
    println!("cargo:rerun-if-changed={}", file.display());
    let rel = file
        .strip_prefix(base)
        .expect("under base")
        .to_string_lossy()
        .replace('\\', "/");
    let _ = writeln!(
        out,
        "    ({:?}, {:?}, include_bytes!({:?})),",
        lang.unwrap_or(""),
        rel,
        file.display().to_string()
    );
}

/// Every file under `dir`, sorted, minus ignored ones.
fn files(dir: &Path) -> Vec<PathBuf> {
    let ignored = ignored_names(dir);
    let mut found = Vec::new();
    walk(dir, &ignored, &mut found);
    found.sort();
    found
}

fn walk(dir: &Path, ignored: &[String], found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if ignored.contains(&name) || name.ends_with(".wasm") || name == "__pycache__" {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, ignored, found);
        } else if kind.is_file() {
            found.push(path);
        }
    }
}

/// Plain names from the directory's `.gitignore` (`node_modules/`,
/// `/dist`, `target`); patterns with wildcards are not supported and not
/// needed by the templates.
fn ignored_names(dir: &Path) -> Vec<String> {
    let mut names = vec!["target".to_owned()];
    if let Ok(text) = fs::read_to_string(dir.join(".gitignore")) {
        for line in text.lines() {
            let line = line.trim().trim_start_matches('/').trim_end_matches('/');
            if !line.is_empty() && !line.starts_with('#') && !line.contains(['*', '/', '!']) {
                names.push(line.to_owned());
            }
        }
    }
    names
}
