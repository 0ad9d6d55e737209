//! Where the client finds its server and token.
//!
//! Precedence, highest first: flags (`--server`, `--token`,
//! `--token-file`), environment (`PLUGBOARD_SERVER`, `PLUGBOARD_TOKEN`,
//! `PLUGBOARD_TOKEN_FILE`), the config file (`--cli-config`,
//! `PLUGBOARD_CLI_CONFIG`, else `$XDG_CONFIG_HOME/plugboard/cli.toml` or
//! `~/.config/plugboard/cli.toml`), and last the admin token the host
//! wrote into its data directory (`$PLUGBOARD_DATA_DIR/admin.token`, else
//! `./plugboard-data/admin.token`), so the quickstart needs no token
//! juggling. The token is never printed, not even in errors.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::error::{CliError, CliResult};
use crate::api::ADMIN_TOKEN_FILE;
use crate::config::DEFAULT_DATA_DIR;

/// Server used when nothing names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// An API token. Its `Debug` hides the value and the memory is wiped on
/// drop, so it cannot end up in a log line or error by accident.
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// Wraps a token read from somewhere; surrounding whitespace (the
    /// newline of a token file) is not part of it.
    pub(crate) fn new(raw: &str, from: &str) -> CliResult<Self> {
        let token = raw.trim();
        if token.is_empty() {
            return Err(CliError::usage(format!("the token from {from} is empty")));
        }
        if token.chars().any(|c| !c.is_ascii_graphic()) {
            // Said without the value: it is a secret even when malformed.
            return Err(CliError::usage(format!(
                "the token from {from} contains characters a token never has"
            )));
        }
        Ok(Self(Zeroizing::new(token.to_owned())))
    }

    /// The value, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// What the command line says about the connection (flags only; the
/// environment is read by [`resolve`]).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--server`.
    pub server: Option<String>,
    /// `--token`.
    pub token: Option<String>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--cli-config` or `PLUGBOARD_CLI_CONFIG` (clap reads that variable).
    pub config: Option<PathBuf>,
}

/// Where the client connects, and as whom.
#[derive(Debug)]
pub struct Connection {
    /// Base URL of the host.
    pub server: url::Url,
    /// The bearer token, if any source had one.
    pub token: Option<Token>,
    /// Where the token came from, for `--verbose` and error hints (never
    /// the token itself).
    pub token_source: Option<String>,
}

/// The config file: `server`, and `token` or `token_file`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
}

/// Resolves server and token from flags, `env` (a lookup, so tests need
/// not touch the process environment) and files.
pub fn resolve(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> CliResult<Connection> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let file = load_config_file(flags, &env)?;
    let (config, config_dir) = match &file {
        Some((config, path)) => (config, path.parent().map(Path::to_path_buf)),
        None => (&FileConfig::default(), None),
    };

    let server = flags
        .server
        .clone()
        .or_else(|| env("PLUGBOARD_SERVER"))
        .or_else(|| config.server.clone())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let server = parse_server(&server)?;

    let (token, token_source) = if let Some(t) = &flags.token {
        (Some(Token::new(t, "--token")?), Some("--token".to_owned()))
    } else if let Some(path) = &flags.token_file {
        token_from_file(path, "--token-file")?
    } else if let Some(t) = env("PLUGBOARD_TOKEN") {
        (
            Some(Token::new(&t, "PLUGBOARD_TOKEN")?),
            Some("PLUGBOARD_TOKEN".to_owned()),
        )
    } else if let Some(path) = env("PLUGBOARD_TOKEN_FILE") {
        token_from_file(Path::new(&path), "PLUGBOARD_TOKEN_FILE")?
    } else if let Some((config, path)) = &file
        && (config.token.is_some() || config.token_file.is_some())
    {
        let from = format!("the config file {}", path.display());
        match (&config.token, &config.token_file) {
            (Some(_), Some(_)) => {
                return Err(CliError::usage(format!(
                    "{from} sets both `token` and `token_file`: keep one"
                )));
            }
            (Some(t), None) => (Some(Token::new(t, &from)?), Some(from)),
            (None, Some(file)) => {
                // Relative to the config file, like any path written in it.
                let file = match &config_dir {
                    Some(dir) if file.is_relative() => dir.join(file),
                    _ => file.clone(),
                };
                token_from_file(&file, &format!("`token_file` in {from}"))?
            }
            (None, None) => (None, None),
        }
    } else {
        let data_dir = env("PLUGBOARD_DATA_DIR").unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned());
        let path = Path::new(&data_dir).join(ADMIN_TOKEN_FILE);
        if path.is_file() {
            token_from_file(&path, "the host's data directory")?
        } else {
            (None, None)
        }
    };
    Ok(Connection {
        server,
        token,
        token_source,
    })
}

/// Reads a token file; a file that was asked for but cannot be read is a
/// usage error.
fn token_from_file(path: &Path, from: &str) -> CliResult<(Option<Token>, Option<String>)> {
    let raw = std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| {
            CliError::usage(format!(
                "cannot read the token file {} ({from}): {e}",
                path.display()
            ))
        })?;
    let source = format!("{} ({from})", path.display());
    Ok((Some(Token::new(&raw, &source)?), Some(source)))
}

/// Loads the config file named by `--cli-config`/`PLUGBOARD_CLI_CONFIG` (must
/// exist) or found at the default place (may be absent).
fn load_config_file(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> CliResult<Option<(FileConfig, PathBuf)>> {
    let (path, required) = match &flags.config {
        Some(path) => (path.clone(), true),
        None => match default_config_path(env) {
            Some(path) => (path, false),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::usage(format!(
                "cannot read the config file {}: {e}",
                path.display()
            )));
        }
    };
    let config: FileConfig = toml::from_str(&text).map_err(|e| {
        // toml's own rendering quotes the offending line, which may hold
        // the token: say where and what, not the text.
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
        CliError::usage(format!(
            "invalid config file {}{at}: {}",
            path.display(),
            e.message()
        ))
    })?;
    if config.token.is_some() {
        warn_if_shared(&path);
    }
    Ok(Some((config, path)))
}

/// `$XDG_CONFIG_HOME/plugboard/cli.toml`, else `~/.config/plugboard/cli.toml`.
fn default_config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = match env("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env("HOME")?).join(".config"),
    };
    Some(base.join("plugboard").join("cli.toml"))
}

/// A token in a file others can read is a leaked token: say so.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: {} holds a token but is readable by others: chmod 600 it",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Parses and checks the server URL (`http` or `https`, no query).
fn parse_server(raw: &str) -> CliResult<url::Url> {
    let url = url::Url::parse(raw)
        .map_err(|e| CliError::usage(format!("invalid server URL {raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(CliError::usage(format!(
            "invalid server URL {raw:?}: use http://host:port or https://host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(CliError::usage(format!(
            "invalid server URL {raw:?}: no user, query or fragment"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Env(HashMap<&'static str, String>);

    impl Env {
        fn new(vars: &[(&'static str, &str)]) -> Self {
            Self(vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
        }
        fn get(&self) -> impl Fn(&str) -> Option<String> + '_ {
            |k| self.0.get(k).cloned()
        }
    }

    fn token(c: &Connection) -> Option<&str> {
        c.token.as_ref().map(Token::expose)
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn flags_beat_env_beat_config_beat_data_dir() {
        let dir = tempfile_dir();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        write(&data, "admin.token", "pb_datadir\n");
        let config = write(
            &dir,
            "cli.toml",
            "server = \"http://config:1\"\ntoken = \"pb_config\"\n",
        );
        let env = Env::new(&[
            ("PLUGBOARD_TOKEN", "pb_env"),
            ("PLUGBOARD_SERVER", "http://env:2"),
            ("PLUGBOARD_DATA_DIR", data.to_str().expect("utf-8")),
        ]);
        let mut flags = Flags {
            server: Some("http://flag:3".into()),
            token: Some("pb_flag".into()),
            token_file: None,
            config: Some(config),
        };
        let c = resolve(&flags, &env.get()).expect("resolve");
        assert_eq!(
            (c.server.as_str(), token(&c)),
            ("http://flag:3/", Some("pb_flag"))
        );

        flags.server = None;
        flags.token = None;
        let c = resolve(&flags, &env.get()).expect("resolve");
        assert_eq!(
            (c.server.as_str(), token(&c)),
            ("http://env:2/", Some("pb_env"))
        );

        let env = Env::new(&[("PLUGBOARD_DATA_DIR", data.to_str().expect("utf-8"))]);
        let c = resolve(&flags, &env.get()).expect("resolve");
        assert_eq!(
            (c.server.as_str(), token(&c)),
            ("http://config:1/", Some("pb_config"))
        );

        flags.config = None;
        let c = resolve(&flags, &env.get()).expect("resolve");
        assert_eq!(c.server.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(token(&c), Some("pb_datadir"));
    }

    #[test]
    fn token_file_flag_and_relative_token_file_in_config() {
        let dir = tempfile_dir();
        let file = write(&dir, "t", "  pb_file \n");
        let flags = Flags {
            token_file: Some(file),
            ..Flags::default()
        };
        let env = Env::new(&[("PLUGBOARD_TOKEN", "pb_env")]);
        let c = resolve(&flags, &env.get()).expect("resolve");
        assert_eq!(token(&c), Some("pb_file"));

        let config = write(&dir, "cli.toml", "token_file = \"t\"\n");
        let flags = Flags {
            config: Some(config),
            ..Flags::default()
        };
        let c = resolve(&flags, &Env::new(&[]).get()).expect("resolve");
        assert_eq!(token(&c), Some("pb_file"));
    }

    #[test]
    fn config_found_in_xdg_config_home() {
        let dir = tempfile_dir();
        std::fs::create_dir_all(dir.join("plugboard")).expect("mkdir");
        write(
            &dir.join("plugboard"),
            "cli.toml",
            "server = \"https://pb.example\"\n",
        );
        let env = Env::new(&[("XDG_CONFIG_HOME", dir.to_str().expect("utf-8"))]);
        let c = resolve(&Flags::default(), &env.get()).expect("resolve");
        assert_eq!(c.server.as_str(), "https://pb.example/");
    }

    #[test]
    fn bad_inputs_are_usage_errors_that_never_show_the_token() {
        let dir = tempfile_dir();
        let secret = "pb_supersecret_value";
        let broken = write(
            &dir,
            "cli.toml",
            &format!("token = \"{secret}\nserver = 1\n"),
        );
        let flags = Flags {
            config: Some(broken),
            ..Flags::default()
        };
        let e = resolve(&flags, &Env::new(&[]).get()).expect_err("broken toml");
        assert_eq!(e.exit_code(), 2);
        assert!(!e.to_string().contains(secret), "{e}");

        let flags = Flags {
            token: Some("pb_has space".into()),
            ..Flags::default()
        };
        let e = resolve(&flags, &Env::new(&[]).get()).expect_err("bad token");
        assert!(!e.to_string().contains("pb_has"), "{e}");
        assert!(format!("{:?}", Token::new("pb_x", "t").expect("token")).contains("redacted"));

        for (server, ok) in [
            ("http://127.0.0.1:8080", true),
            ("https://pb.example/base", true),
            ("ftp://x", false),
            ("127.0.0.1:8080", false),
            ("http://u:p@x", false),
        ] {
            let flags = Flags {
                server: Some(server.into()),
                ..Flags::default()
            };
            assert_eq!(
                resolve(&flags, &Env::new(&[]).get()).is_ok(),
                ok,
                "{server}"
            );
        }
        let flags = Flags {
            config: Some(dir.join("missing.toml")),
            ..Flags::default()
        };
        assert_eq!(
            resolve(&flags, &Env::new(&[]).get())
                .expect_err("missing")
                .exit_code(),
            2
        );
    }

    /// A fresh directory under the system temp dir (the host crate has no
    /// tempfile dependency), removed on drop.
    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tempfile_dir() -> TempDir {
        let dir = std::env::temp_dir().join(format!("plugboard-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        TempDir(dir)
    }
}
