//! How answers are shown: `--json` prints the server's JSON as it came
//! (pretty); `--quiet` prints one field (an id, a token) for scripts;
//! otherwise lists become tables and single objects key/value views.
//! Errors go to stderr as `error: CODE: message`.

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

use super::error::CliError;

/// Longest table cell before it is cut (key/value views are never cut).
const MAX_CELL: usize = 60;

/// Deepest nesting a key/value view flattens into dotted keys; deeper
/// values are shown as compact JSON.
const MAX_DEPTH: usize = 3;

/// One column of a table: a header and a JSON pointer into each item.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Header, upper case by convention.
    pub header: &'static str,
    /// JSON pointer into the item (`/id`, `/trigger/kind`).
    pub pointer: &'static str,
}

/// Shorthand for a [`Column`].
pub const fn col(header: &'static str, pointer: &'static str) -> Column {
    Column { header, pointer }
}

/// The chosen output mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    /// `--json`.
    pub json: bool,
    /// `--quiet`.
    pub quiet: bool,
}

impl Output {
    /// Prints a single answer: as JSON, its `quiet` field, or `human`'s
    /// rendering.
    pub fn show(&self, value: &Value, quiet: &str, human: impl FnOnce(&Value) -> String) {
        if self.json {
            print_json(value);
        } else if self.quiet {
            if let Some(v) = value.pointer(quiet) {
                line(&plain(v));
            }
        } else {
            print_block(&human(value));
        }
    }

    /// Prints a single object as a key/value view.
    pub fn object(&self, value: &Value) {
        self.show(value, "/id", kv);
    }

    /// Prints a list answer (`{"items": […]}`) as a table, with the
    /// next-page hint of paged answers.
    pub fn list(&self, value: &Value, columns: &[Column]) {
        if self.json {
            print_json(value);
            return;
        }
        let items = items(value);
        if self.quiet {
            for item in items {
                if let Some(id) = item.get("id") {
                    line(&plain(id));
                }
            }
            return;
        }
        if items.is_empty() {
            line("(none)");
        } else {
            print_block(&table(items, columns));
        }
        if let Some(hint) = next_page(value) {
            line(&hint);
        }
    }

    /// Reports an answer without a body (`204`): a sentence for people,
    /// nothing for scripts.
    pub fn done(&self, message: &str) {
        if !self.json && !self.quiet {
            line(message);
        }
    }
}

/// The `items` of a list answer (an empty slice if there are none).
pub fn items(value: &Value) -> &[Value] {
    value
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// "next page: …" for answers with a cursor (`next` of events,
/// `nextCursor` of the audit log).
fn next_page(value: &Value) -> Option<String> {
    if let Some(next) = value.get("next").and_then(Value::as_str) {
        return Some(format!("more: --after {next}"));
    }
    if let Some(next) = value.get("nextCursor").and_then(Value::as_str) {
        return Some(format!("more: --cursor {next}"));
    }
    None
}

/// Pretty JSON on stdout.
pub fn print_json(value: &Value) {
    line(&serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

fn print_block(text: &str) {
    if text.ends_with('\n') {
        raw(text.as_bytes());
    } else {
        line(text);
    }
}

/// Writes a line to stdout.
pub fn line(text: &str) {
    raw(format!("{text}\n").as_bytes());
}

/// Writes bytes to stdout as they are. A reader that went away (`| head`)
/// ends the program quietly instead of with a panic: what it wanted, it
/// has.
pub fn raw(bytes: &[u8]) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(i32::from(super::error::EXIT_OTHER));
    }
}

/// A value as text: strings without quotes, `-` for null, lists of
/// scalars joined, anything else compact JSON.
pub fn plain(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(a) if a.is_empty() => "-".to_owned(),
        Value::Array(a) if a.iter().all(|v| !v.is_object() && !v.is_array()) => {
            a.iter().map(plain).collect::<Vec<_>>().join(", ")
        }
        _ => value.to_string(),
    }
}

/// A table with one row per item.
pub fn table(items: &[Value], columns: &[Column]) -> String {
    let mut table = new_table();
    table.set_header(columns.iter().map(|c| c.header));
    for item in items {
        table.add_row(columns.iter().map(|c| {
            let text = item
                .pointer(c.pointer)
                .map(plain)
                .unwrap_or_else(|| "-".into());
            cut(&text)
        }));
    }
    render(table)
}

/// A key/value view of an object: nested objects become dotted keys
/// (`latencyMs.p50`).
pub fn kv(value: &Value) -> String {
    let mut rows = Vec::new();
    flatten("", value, 0, &mut rows);
    kv_rows(&rows)
}

/// A key/value view of the given rows.
pub fn kv_rows(rows: &[(String, String)]) -> String {
    let mut table = new_table();
    for (k, v) in rows {
        table.add_row([k.as_str(), v.as_str()]);
    }
    render(table)
}

/// A key/value view of the chosen fields of an object, in that order
/// (absent ones left out).
pub fn kv_fields(value: &Value, fields: &[&str]) -> String {
    let rows: Vec<(String, String)> = fields
        .iter()
        .filter_map(|f| {
            let v = value.pointer(&format!("/{}", f.replace('.', "/")))?;
            Some(((*f).to_owned(), plain(v)))
        })
        .collect();
    kv_rows(&rows)
}

fn flatten(prefix: &str, value: &Value, depth: usize, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() && depth < MAX_DEPTH => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, depth + 1, rows);
            }
        }
        _ if prefix.is_empty() => rows.push(("value".to_owned(), plain(value))),
        _ => rows.push((prefix.to_owned(), plain(value))),
    }
}

fn new_table() -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    table
}

/// Renders without the preset's left padding and trailing blanks, so
/// columns start at the margin and lines grep cleanly.
fn render(mut table: Table) -> String {
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn cut(text: &str) -> String {
    let text = text.replace('\n', " ");
    if text.chars().count() <= MAX_CELL {
        text
    } else {
        let mut short: String = text.chars().take(MAX_CELL - 1).collect();
        short.push('…');
        short
    }
}

/// Prints a failed command to stderr (`error: CODE: message` and the
/// details that help); with `--json`, an API error's body also goes to
/// stdout as it came.
pub fn print_error(error: &CliError, json: bool) {
    match error {
        CliError::Api {
            code,
            message,
            body,
            ..
        } => {
            if json {
                print_json(body);
            }
            eprintln!("error: {code}: {message}");
            for line in error_details(body) {
                eprintln!("  {line}");
            }
        }
        CliError::Other(e) => eprintln!("error: {e:#}"),
        other => eprintln!("error: {other}"),
    }
}

/// The helpful parts of an API error: field errors one per line, other
/// details compactly, and the invocation id.
fn error_details(body: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(details) = body.pointer("/error/details").and_then(Value::as_object) {
        for (key, value) in details {
            match (key.as_str(), value.as_array()) {
                ("errors", Some(errors)) => {
                    for e in errors {
                        let path = e.get("path").map(plain).unwrap_or_default();
                        let path = if path.is_empty() { "/".into() } else { path };
                        let what = e
                            .get("message")
                            .or_else(|| e.get("rule"))
                            .map(plain)
                            .unwrap_or_else(|| e.to_string());
                        lines.push(format!("{path}: {what}"));
                    }
                }
                _ => lines.push(format!("{key}: {}", plain(value))),
            }
        }
    }
    if let Some(id) = body.get("invocationId").and_then(Value::as_str) {
        lines.push(format!("invocation: {id}"));
    }
    // `--outbound`: the attempts are what explains a failed call.
    for a in body
        .get("outbound")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let field = |k: &str| a.get(k).map(plain).unwrap_or_else(|| "-".into());
        lines.push(format!(
            "outbound: {} {} attempt {}: {}, status {}",
            field("method"),
            field("upstream"),
            field("attempt"),
            field("decision"),
            field("status"),
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_and_show_missing_as_dash() {
        let items = [
            json!({"id": "a", "name": "first", "methods": ["x", "y"]}),
            json!({"id": "bb", "methods": []}),
        ];
        let t = table(
            &items,
            &[
                col("ID", "/id"),
                col("NAME", "/name"),
                col("METHODS", "/methods"),
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID  NAME   METHODS");
        assert_eq!(lines[1], "a   first  x, y");
        assert_eq!(lines[2], "bb  -      -");
    }

    #[test]
    fn kv_flattens_nested_objects() {
        let v =
            json!({"instance": "inst_1", "latencyMs": {"p50": 1.5}, "statuses": {}, "tags": ["a"]});
        let text = kv(&v);
        assert!(text.contains("instance       inst_1"), "{text}");
        assert!(text.contains("latencyMs.p50  1.5"), "{text}");
        assert!(text.contains("statuses       {}"), "{text}");
        assert!(text.contains("tags           a"), "{text}");
    }

    #[test]
    fn long_cells_are_cut_in_tables_only() {
        let long = "x".repeat(100);
        let t = table(&[json!({"v": long})], &[col("V", "/v")]);
        assert!(
            t.lines()
                .nth(1)
                .is_some_and(|l| l.chars().count() == MAX_CELL)
        );
        assert!(kv(&json!({"v": long})).contains(&long));
    }

    #[test]
    fn error_details_list_field_errors() {
        let body = json!({"status": "ERROR", "invocationId": "inv_1", "error": {
            "code": "INVALID_PARAMS", "message": "m",
            "details": {"errors": [{"path": "/message", "message": "42 is not of type \"string\""}]}}});
        assert_eq!(
            error_details(&body),
            [
                "/message: 42 is not of type \"string\"",
                "invocation: inv_1"
            ]
        );
        let body = json!({"status": "ERROR", "error": {"code": "UPSTREAM_ERROR", "message": "m"},
            "outbound": [{"method": "GET", "upstream": "https://a.example:443", "attempt": 1,
                          "decision": "allowed", "status": 503}]});
        assert_eq!(
            error_details(&body),
            ["outbound: GET https://a.example:443 attempt 1: allowed, status 503"]
        );
    }
}
