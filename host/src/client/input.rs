//! Local inputs of commands: JSON given inline, as `@file`, or `-` for
//! standard input. Any failure here is a usage error: nothing was sent.

use std::io::Read as _;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use super::error::{CliError, CliResult};

/// Whether standard input was read already: a second `-` would silently
/// get nothing.
static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// Reads the raw bytes an argument names: `-` is standard input, `@path` a
/// file, anything else the argument itself.
pub fn raw(arg: &str, what: &str) -> CliResult<Vec<u8>> {
    if arg == "-" {
        if STDIN_TAKEN.swap(true, Ordering::SeqCst) {
            return Err(CliError::usage(format!(
                "{what}: standard input (`-`) was already used by another argument"
            )));
        }
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CliError::usage(format!("{what}: cannot read standard input: {e}")))?;
        Ok(buf)
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read(path).map_err(|e| CliError::usage(format!("{what}: cannot read {path}: {e}")))
    } else {
        Ok(arg.as_bytes().to_vec())
    }
}

/// Reads a JSON argument (inline, `@file` or `-`).
pub fn json(arg: &str, what: &str) -> CliResult<Value> {
    let bytes = raw(arg, what)?;
    parse_json(&bytes, what, arg)
}

/// Reads a JSON argument that must be an object.
pub fn object(arg: &str, what: &str) -> CliResult<Value> {
    let value = json(arg, what)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(CliError::usage(format!("{what} must be a JSON object")))
    }
}

fn parse_json(bytes: &[u8], what: &str, arg: &str) -> CliResult<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        let from = match arg {
            "-" => " (from standard input)".to_owned(),
            a if a.starts_with('@') => format!(" (from {})", &a[1..]),
            _ => String::new(),
        };
        CliError::usage(format!("{what}{from} is not valid JSON: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_file_json() {
        assert_eq!(
            json(r#"{"a": 1}"#, "params").expect("inline"),
            serde_json::json!({"a": 1})
        );
        let path = std::env::temp_dir().join(format!("pb-input-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, b"[1, 2]").expect("write");
        let arg = format!("@{}", path.display());
        assert_eq!(
            json(&arg, "params").expect("file"),
            serde_json::json!([1, 2])
        );
        let e = object(&arg, "config").expect_err("not an object");
        assert!(e.to_string().contains("must be a JSON object"), "{e}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn failures_are_usage_errors() {
        let e = json("{nope", "params").expect_err("invalid");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("params is not valid JSON"), "{e}");
        let e = json("@/nonexistent/x.json", "params").expect_err("missing");
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("cannot read /nonexistent/x.json"),
            "{e}"
        );
    }
}
