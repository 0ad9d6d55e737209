//! `upload_file`: Slack's external upload flow, which replaced
//! `files.upload`:
//!
//! 1. `files.getUploadURLExternal` (form: `filename`, `length`) answers an
//!    `upload_url` and a `file_id`;
//! 2. the bytes are POSTed to the `upload_url` (on `files.slack.com`, the
//!    config's `upload_base`; no token needed or sent);
//! 3. `files.completeUploadExternal` (JSON: `files`, `channel_id`,
//!    `initial_comment`, `thread_ts`) shares the file.

use plugboard_guest::encoding::base64_decode;
use plugboard_guest::http::Request;
use plugboard_guest::prelude::*;

use crate::api;

/// Parameters of `upload_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadFile {
    /// File name, e.g. `report.csv`.
    #[schemars(length(min = 1, max = 255))]
    pub filename: String,
    /// Text content. One of `content` and `content_base64` is required.
    #[serde(default)]
    pub content: Option<String>,
    /// Binary content, standard base64.
    #[serde(default)]
    pub content_base64: Option<String>,
    /// Channel id to share the file in; without it the file stays private.
    #[serde(default)]
    pub channel: Option<String>,
    /// Title (default: the file name).
    #[serde(default)]
    pub title: Option<String>,
    /// Message introducing the file.
    #[serde(default)]
    pub initial_comment: Option<String>,
    /// Share it as a reply in this thread (needs `channel`).
    #[serde(default)]
    pub thread_ts: Option<String>,
    /// Alt text for screen readers (images).
    #[serde(default)]
    pub alt_text: Option<String>,
}

/// What `upload_file` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UploadedFile {
    /// The file's id (`F…`).
    pub file_id: String,
    /// The files as `files.completeUploadExternal` reported them.
    pub files: Vec<Value>,
}

/// `upload_file`.
pub fn upload_file(p: UploadFile) -> Result<UploadedFile> {
    let bytes = match (&p.content, &p.content_base64) {
        (Some(text), None) => text.clone().into_bytes(),
        (None, Some(b64)) => base64_decode("content_base64", b64)?,
        _ => {
            return Err(Error::invalid_input(
                "give exactly one of `content` and `content_base64`",
            ));
        }
    };
    if bytes.is_empty() {
        return Err(Error::invalid_input("the file is empty"));
    }
    if p.thread_ts.is_some() && p.channel.is_none() {
        return Err(Error::invalid_input("`thread_ts` needs `channel`"));
    }

    let mut form = vec![
        ("filename", p.filename.clone()),
        ("length", bytes.len().to_string()),
    ];
    if let Some(alt) = &p.alt_text {
        form.push(("alt_txt", alt.clone()));
    }
    let ticket = api::call_form("files.getUploadURLExternal", &form)?;
    let (Some(upload_url), Some(file_id)) =
        (ticket["upload_url"].as_str(), ticket["file_id"].as_str())
    else {
        return Err(Error::upstream(
            200,
            "files.getUploadURLExternal answered no upload_url or file_id",
        ));
    };
    let upload_base = api::config()?.upload_base;
    if !upload_url.starts_with(&format!("{}/", upload_base.trim_end_matches('/'))) {
        return Err(Error::permanent(format!(
            "Slack's upload URL is not under the configured upload_base {upload_base}"
        )));
    }
    api::send(
        Request::post(upload_url)
            .header("content-type", "application/octet-stream")
            .body(bytes),
    )?
    .error_for_status()?;

    let mut complete = json!({
        "files": [{ "id": file_id, "title": p.title.as_deref().unwrap_or(&p.filename) }],
    });
    for (key, value) in [
        ("channel_id", &p.channel),
        ("initial_comment", &p.initial_comment),
        ("thread_ts", &p.thread_ts),
    ] {
        if let Some(v) = value {
            complete[key] = json!(v);
        }
    }
    let done = api::call("files.completeUploadExternal", &complete)?;
    Ok(UploadedFile {
        file_id: file_id.to_owned(),
        files: done["files"].as_array().cloned().unwrap_or_default(),
    })
}
