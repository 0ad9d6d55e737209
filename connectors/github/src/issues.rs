//! Issues, comments and pull requests.
//!
//! `owner` and `repo` are constrained by the schema (checked by the host
//! before the connector runs) to GitHub's name characters, so they cannot
//! smuggle path segments or queries.

use plugboard_guest::http::Request;
use plugboard_guest::prelude::*;
use plugboard_guest::serde_json::Map;

use plugboard_guest::http::Page;

use crate::api;

/// `/repos/{owner}/{repo}{rest}`, refusing names that are not GitHub
/// names (the schema already did; this keeps the path safe regardless).
fn repo_path(owner: &str, repo: &str, rest: &str) -> Result<String> {
    let ok = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || extra.contains(&c))
    };
    if !ok(owner, &[]) || !ok(repo, &['_', '.']) {
        return Err(Error::invalid_input(format!(
            "`{owner}/{repo}` is not a GitHub repository name"
        )));
    }
    Ok(format!("/repos/{owner}/{repo}{rest}"))
}

/// An issue (or pull request, which GitHub lists as issues too): the
/// common fields typed, the rest passed through.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Issue {
    /// Global id.
    pub id: u64,
    /// Number within the repository.
    pub number: u64,
    /// Title.
    pub title: String,
    /// `open` or `closed`.
    pub state: String,
    /// Web URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    /// Every other field GitHub returned.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Parameters of `create_issue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIssue {
    /// Owner (user or organization) login.
    #[schemars(pattern(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$"))]
    pub owner: String,
    /// Repository name.
    #[schemars(pattern(r"^[A-Za-z0-9_.-]{1,100}$"))]
    pub repo: String,
    /// Title.
    #[schemars(length(min = 1, max = 256))]
    pub title: String,
    /// Markdown body.
    #[serde(default)]
    pub body: Option<String>,
    /// Label names.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Logins to assign.
    #[serde(default)]
    pub assignees: Option<Vec<String>>,
    /// Milestone number.
    #[serde(default)]
    pub milestone: Option<u64>,
}

/// `create_issue`: `POST /repos/{owner}/{repo}/issues`.
pub fn create_issue(p: CreateIssue) -> Result<Issue> {
    let mut body = Map::new();
    body.insert("title".into(), json!(p.title));
    if let Some(v) = p.body {
        body.insert("body".into(), json!(v));
    }
    if let Some(v) = p.labels {
        body.insert("labels".into(), json!(v));
    }
    if let Some(v) = p.assignees {
        body.insert("assignees".into(), json!(v));
    }
    if let Some(v) = p.milestone {
        body.insert("milestone".into(), json!(v));
    }
    api::send(Request::post(api::url(&repo_path(&p.owner, &p.repo, "/issues")?)?).json(&body))?
        .json()
}

/// Why an issue is closed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Done.
    Completed,
    /// Won't do.
    NotPlanned,
}

/// Parameters of `close_issue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseIssue {
    /// Owner (user or organization) login.
    #[schemars(pattern(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$"))]
    pub owner: String,
    /// Repository name.
    #[schemars(pattern(r"^[A-Za-z0-9_.-]{1,100}$"))]
    pub repo: String,
    /// Issue number.
    #[schemars(range(min = 1))]
    pub number: u64,
    /// Why (default `completed`).
    #[serde(default)]
    pub reason: Option<CloseReason>,
}

/// `close_issue`: `PATCH /repos/{owner}/{repo}/issues/{number}` with
/// `state: closed`.
pub fn close_issue(p: CloseIssue) -> Result<Issue> {
    let reason = p.reason.unwrap_or(CloseReason::Completed);
    let url = api::url(&repo_path(
        &p.owner,
        &p.repo,
        &format!("/issues/{}", p.number),
    )?)?;
    api::send(Request::patch(url).json(&json!({ "state": "closed", "state_reason": reason })))?
        .json()
}

/// Parameters of `comment_issue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentIssue {
    /// Owner (user or organization) login.
    #[schemars(pattern(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$"))]
    pub owner: String,
    /// Repository name.
    #[schemars(pattern(r"^[A-Za-z0-9_.-]{1,100}$"))]
    pub repo: String,
    /// Issue or pull request number.
    #[schemars(range(min = 1))]
    pub number: u64,
    /// Markdown body.
    #[schemars(length(min = 1))]
    pub body: String,
}

/// A comment.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Comment {
    /// Comment id.
    pub id: u64,
    /// Markdown body.
    pub body: String,
    /// Web URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    /// Every other field GitHub returned.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `comment_issue`: `POST /repos/{owner}/{repo}/issues/{number}/comments`.
pub fn comment_issue(p: CommentIssue) -> Result<Comment> {
    let url = api::url(&repo_path(
        &p.owner,
        &p.repo,
        &format!("/issues/{}/comments", p.number),
    )?)?;
    api::send(Request::post(url).json(&json!({ "body": p.body })))?.json()
}

/// Parameters of `create_pull_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePullRequest {
    /// Owner (user or organization) login.
    #[schemars(pattern(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$"))]
    pub owner: String,
    /// Repository name.
    #[schemars(pattern(r"^[A-Za-z0-9_.-]{1,100}$"))]
    pub repo: String,
    /// Title.
    #[schemars(length(min = 1))]
    pub title: String,
    /// Branch with the changes (`branch`, or `user:branch` across forks).
    #[schemars(length(min = 1))]
    pub head: String,
    /// Branch to merge into.
    #[schemars(length(min = 1))]
    pub base: String,
    /// Markdown description.
    #[serde(default)]
    pub body: Option<String>,
    /// Open as a draft.
    #[serde(default)]
    pub draft: Option<bool>,
}

/// A pull request: the common fields typed, the rest passed through.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PullRequest {
    /// Global id.
    pub id: u64,
    /// Number within the repository.
    pub number: u64,
    /// `open` or `closed`.
    pub state: String,
    /// Web URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    /// Every other field GitHub returned.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `create_pull_request`: `POST /repos/{owner}/{repo}/pulls`.
pub fn create_pull_request(p: CreatePullRequest) -> Result<PullRequest> {
    let mut body = Map::new();
    body.insert("title".into(), json!(p.title));
    body.insert("head".into(), json!(p.head));
    body.insert("base".into(), json!(p.base));
    if let Some(v) = p.body {
        body.insert("body".into(), json!(v));
    }
    if let Some(v) = p.draft {
        body.insert("draft".into(), json!(v));
    }
    api::send(Request::post(api::url(&repo_path(&p.owner, &p.repo, "/pulls")?)?).json(&body))?
        .json()
}

/// Issue states to list.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    /// Open only (GitHub's default).
    Open,
    /// Closed only.
    Closed,
    /// Both.
    All,
}

/// Parameters of `list_issues`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListIssues {
    /// Owner (user or organization) login.
    #[schemars(pattern(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$"))]
    pub owner: String,
    /// Repository name.
    #[schemars(pattern(r"^[A-Za-z0-9_.-]{1,100}$"))]
    pub repo: String,
    /// Which states (default `open`).
    #[serde(default)]
    pub state: Option<StateFilter>,
    /// Comma-separated label names.
    #[serde(default)]
    pub labels: Option<String>,
    /// Per page, 1-100 (GitHub's default 30).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub per_page: Option<u32>,
    /// Page to start at (default 1).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub page: Option<u32>,
    /// Pages to fetch, following `Link` headers (default 1, at most 10).
    #[serde(default)]
    #[schemars(range(min = 1, max = 10))]
    pub max_pages: Option<u32>,
}

/// `list_issues`: `GET /repos/{owner}/{repo}/issues`, following
/// `Link: rel="next"`.
pub fn list_issues(p: ListIssues) -> Result<Page<Issue>> {
    let mut r = Request::get(api::url(&repo_path(&p.owner, &p.repo, "/issues")?)?);
    if let Some(state) = p.state {
        let state = match state {
            StateFilter::Open => "open",
            StateFilter::Closed => "closed",
            StateFilter::All => "all",
        };
        r = r.query("state", state);
    }
    if let Some(labels) = p.labels {
        r = r.query("labels", labels);
    }
    if let Some(n) = p.per_page {
        r = r.query("per_page", n.to_string());
    }
    r = r.query("page", p.page.unwrap_or(1).to_string());
    api::follow_pages(r, p.max_pages.unwrap_or(1).clamp(1, 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_paths_are_checked() {
        assert_eq!(
            repo_path("octo-org", "hello_world.rs", "/issues").unwrap(),
            "/repos/octo-org/hello_world.rs/issues"
        );
        for (owner, repo) in [
            ("a/b", "r"),
            ("o", "../x"),
            ("o", ".."),
            ("", "r"),
            ("o", "r?x=1"),
        ] {
            assert!(repo_path(owner, repo, "").is_err(), "{owner}/{repo}");
        }
    }
}
