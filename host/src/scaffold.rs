//! `plugboard new <name> --lang rust|js|python|c`: a new connector project
//! from the example connector of that language.
//!
//! The templates are the `tasks` example connectors themselves (embedded
//! by `build.rs`), so a new project starts from code that CI builds and
//! runs through the conformance suite. The example's name is replaced at a
//! few exact spots (the `CONNECTOR_NAME` constant, the package name, the
//! build script's `NAME`); a unit test fails when a template drifts from
//! those spots. Each project also gets the WIT package in `wit/` and,
//! by language, what it needs to build outside this repository: the Rust
//! guest SDK vendored in `plugboard-guest/`, the preview1 reactor adapter
//! for C.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

/// The example connector's name, replaced by the new one.
const EXAMPLE: &str = "tasks";

/// A template language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with the `plugboard-guest` SDK (`cargo`, wasm32-wasip2).
    Rust,
    /// JavaScript with componentize-js (npm).
    Js,
    /// Python with componentize-py (PyPI).
    Python,
    /// C with wit-bindgen, clang and wasi-libc.
    C,
}

impl Lang {
    fn key(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Js => "js",
            Self::Python => "python",
            Self::C => "c",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Rust => "Rust",
            Self::Js => "JavaScript",
            Self::Python => "Python",
            Self::C => "C",
        }
    }
}

/// Arguments of `plugboard new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The connector's name: lowercase letters, digits, `-` and `_`,
    /// starting with a letter.
    pub name: String,
    /// The language.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Directory to create (default: `./<name>`); must not exist or be
    /// empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// A file of the new project.
struct File {
    path: String,
    contents: Vec<u8>,
    executable: bool,
}

/// Creates the project; returns what to do next.
pub fn create(args: &NewArgs) -> anyhow::Result<String> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} exists and is not empty", dir.display());
    }
    let files = project(&args.name, args.lang)?;
    for file in &files {
        write(&dir, file)?;
    }
    Ok(format!(
        "created {} ({} connector `{}`, {} files)\n\nnext:\n  cd {}\n  ./setup.sh        # once: installs what this language needs\n  ./build.sh        # -> dist/{}.wasm\n  plugboard test dist/{}.wasm",
        dir.display(),
        args.lang.title(),
        args.name,
        files.len(),
        dir.display(),
        args.name,
        args.name
    ))
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!(
            "{name:?} is not a connector name: use lowercase letters, digits, `-` and `_`, starting with a letter (at most 64)"
        );
    }
    Ok(())
}

/// Every file of a new project.
fn project(name: &str, lang: Lang) -> anyhow::Result<Vec<File>> {
    let mut files = Vec::new();
    for (l, path, contents) in embedded::TEMPLATES {
        if *l != lang.key() {
            continue;
        }
        // The Rust example's manifest belongs to this workspace; the new
        // project gets a standalone one below.
        if lang == Lang::Rust && *path == "Cargo.toml" {
            continue;
        }
        let contents = if *path == "README.md" {
            readme(name, lang).into_bytes()
        } else {
            rename(path, contents, name)?
        };
        files.push(File {
            path: (*path).to_owned(),
            executable: path.ends_with(".sh"),
            contents,
        });
    }
    if files.is_empty() {
        bail!(
            "this plugboard was built without the {} template",
            lang.title()
        );
    }
    for (_, path, contents) in embedded::WIT {
        files.push(File {
            path: format!("wit/{path}"),
            contents: contents.to_vec(),
            executable: false,
        });
    }
    match lang {
        Lang::Rust => {
            files.push(File {
                path: "Cargo.toml".into(),
                contents: rust_manifest(name).into_bytes(),
                executable: false,
            });
            files.push(File {
                path: "plugboard-guest/Cargo.toml".into(),
                contents: SDK_MANIFEST.as_bytes().to_vec(),
                executable: false,
            });
            for (_, path, contents) in embedded::SDK {
                files.push(File {
                    path: format!("plugboard-guest/{path}"),
                    contents: contents.to_vec(),
                    executable: false,
                });
            }
        }
        Lang::C => files.push(File {
            path: "wasi_snapshot_preview1.reactor.wasm".into(),
            contents:
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
                    .to_vec(),
            executable: false,
        }),
        Lang::Js | Lang::Python => {}
    }
    Ok(files)
}

/// The spots where the example's name is the connector's name.
fn spots(name: &str) -> [(String, String); 6] {
    let q = |s: &str| format!("\"{s}\"");
    [
        // JS and Python: `CONNECTOR_NAME = "tasks"`.
        (
            format!("CONNECTOR_NAME = {}", q(EXAMPLE)),
            format!("CONNECTOR_NAME = {}", q(name)),
        ),
        // Rust: `const CONNECTOR_NAME: &str = "tasks";`.
        (
            format!("CONNECTOR_NAME: &str = {}", q(EXAMPLE)),
            format!("CONNECTOR_NAME: &str = {}", q(name)),
        ),
        // C: `#define CONNECTOR_NAME "tasks"`.
        (
            format!("#define CONNECTOR_NAME {}", q(EXAMPLE)),
            format!("#define CONNECTOR_NAME {}", q(name)),
        ),
        // build.sh: `NAME=tasks`.
        (format!("\nNAME={EXAMPLE}\n"), format!("\nNAME={name}\n")),
        // package.json / package-lock.json.
        (
            format!("\"name\": {}", q(EXAMPLE)),
            format!("\"name\": {}", q(name)),
        ),
        // The default output named in the fixtures or docs of a template.
        (format!("dist/{EXAMPLE}.wasm"), format!("dist/{name}.wasm")),
    ]
}

/// A template file with the example's name replaced at its spots.
fn rename(path: &str, contents: &[u8], name: &str) -> anyhow::Result<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(contents) else {
        return Ok(contents.to_vec());
    };
    let mut text = text.to_owned();
    for (from, to) in spots(name) {
        text = text.replace(&from, &to);
    }
    // A build script that no longer names its output is a template bug the
    // unit tests catch; refuse rather than write a project that builds the
    // example's name.
    if path == "build.sh" && !text.contains(&format!("\nNAME={name}\n")) {
        bail!("template {path} has no `NAME=` line");
    }
    Ok(text.into_bytes())
}

fn readme(name: &str, lang: Lang) -> String {
    format!(
        "# {name}\n\nA Plugboard connector in {title}, started with `plugboard new {name} --lang {key}` \
         from the `tasks` example (see Plugboard's `docs/authoring/{key}.md` and \
         `docs/authoring/tasks-example.md`).\n\n```sh\n./setup.sh                 # once: the {title} toolchain for components\n\
         ./build.sh                 # -> dist/{name}.wasm\nplugboard test dist/{name}.wasm   # conformance checks + plugboard-test.json examples\n```\n\n\
         Upload with `plugboard connectors upload dist/{name}.wasm`.\n",
        title = lang.title(),
        key = lang.key(),
    )
}

/// The standalone manifest of a new Rust project (the example's own
/// manifest inherits from this repository's workspace).
fn rust_manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]
path = "src/lib.rs"

[dependencies]
plugboard-guest = {{ path = "plugboard-guest" }}
serde = {{ version = "1", features = ["derive"] }}
schemars = "1"

# Small components upload and compile faster, and each call in flight
# holds less memory (opt-level 3 is a little faster per call).
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = "debuginfo"

# Not part of any enclosing workspace.
[workspace]
"#
    )
}

/// The vendored SDK's manifest: the workspace's dependency versions,
/// spelled out (a test checks they match the workspace's).
const SDK_MANIFEST: &str = r#"[package]
name = "plugboard-guest"
description = "Write Plugboard connectors (wasm32-wasip2 components) as plain Rust"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
path = "src/lib.rs"

[dependencies]
wit-bindgen = { version = "0.63", default-features = false, features = ["macros", "realloc"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
schemars = "1"
base64 = "0.22"
"#;

fn write(dir: &Path, file: &File) -> anyhow::Result<()> {
    let path = dir.join(&file.path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, &file.contents).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    if file.executable {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LANGS: [Lang; 4] = [Lang::Rust, Lang::Js, Lang::Python, Lang::C];

    #[test]
    fn names_are_checked() {
        assert!(check_name("acme-crm").is_ok());
        assert!(check_name("a_1").is_ok());
        for bad in ["", "Acme", "1x", "a b", "a/b", "ä"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_template_is_renamed_and_complete() {
        for lang in LANGS {
            let files = project("zz-new", lang).expect("template");
            let text = |p: &str| {
                files
                    .iter()
                    .find(|f| f.path == p)
                    .map(|f| String::from_utf8_lossy(&f.contents).into_owned())
                    .unwrap_or_else(|| panic!("{lang:?}: no {p}"))
            };
            assert!(text("build.sh").contains("\nNAME=zz-new\n"), "{lang:?}");
            assert!(
                files.iter().any(|f| f.path == "setup.sh" && f.executable),
                "{lang:?}"
            );
            assert!(
                text("plugboard-test.json").contains("\"examples\""),
                "{lang:?}"
            );
            assert!(
                text("wit/connector.wit").contains("world connector"),
                "{lang:?}"
            );
            // The name constant was replaced in exactly one source file.
            let renamed = files
                .iter()
                .filter(|f| String::from_utf8_lossy(&f.contents).contains("CONNECTOR_NAME"))
                .filter(|f| String::from_utf8_lossy(&f.contents).contains("\"zz-new\""))
                .count();
            assert_eq!(renamed, 1, "{lang:?}: the CONNECTOR_NAME constant");
            for f in &files {
                let t = String::from_utf8_lossy(&f.contents);
                for (from, _) in spots("zz-new") {
                    assert!(
                        !t.contains(&from),
                        "{lang:?}: {} still has {from:?}",
                        f.path
                    );
                }
            }
        }
    }

    #[test]
    fn rust_projects_vendor_the_sdk_with_the_workspace_versions() {
        let files = project("x", Lang::Rust).expect("template");
        assert!(files.iter().any(|f| f.path == "plugboard-guest/src/lib.rs"));
        let workspace = include_str!("../../Cargo.toml");
        for dep in [
            "wit-bindgen = { version = \"0.63\"",
            "schemars = \"1\"",
            "base64 = \"0.22\"",
        ] {
            assert!(workspace.contains(dep), "workspace changed: {dep}");
            assert!(SDK_MANIFEST.contains(dep), "{dep}");
        }
    }

    #[test]
    fn an_existing_project_is_not_overwritten() {
        let dir = std::env::temp_dir().join(format!("pb-new-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("keep"), "x").unwrap();
        let args = NewArgs {
            name: "x".into(),
            lang: Lang::Js,
            dir: Some(dir.clone()),
        };
        let err = create(&args).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.join("keep")).unwrap(), "x");
        let _ = std::fs::remove_dir_all(dir);
    }
}
