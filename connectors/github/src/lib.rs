//! `github`: the GitHub REST API with a token, and GitHub webhooks.
//!
//! The host adds `Authorization: Bearer {token}` to requests towards
//! `{api_base}` (`https://api.github.com` unless configured) and verifies
//! `X-Hub-Signature-256` with `webhook_secret`. Secondary rate limits
//! (403 or 429 with `Retry-After`) and an exhausted primary limit (403
//! with `X-RateLimit-Remaining: 0`) are rate-limited errors, not
//! credential failures; the host's broker pauses the upstream for as long
//! as GitHub asked.

mod api;
mod events;
mod issues;
mod repos;

use std::time::Duration;

use plugboard_guest::http::Request;
use plugboard_guest::prelude::*;

use api::{GithubConfig, GithubCredentials};
use issues::{
    CloseIssue, Comment, CommentIssue, CreateIssue, CreatePullRequest, Issue, ListIssues,
    PullRequest,
};
use plugboard_guest::http::Page;
use repos::{CreateRepo, Repository};

/// The connector.
struct Github;

impl Connector for Github {
    fn manifest() -> Manifest {
        Manifest::new(
            "github",
            env!("CARGO_PKG_VERSION"),
            "GitHub: create repositories, issues, comments and pull requests, close issues, list \
             issues with Link-header pagination; signed webhooks as events (issues.opened, \
             pull_request.opened, push, …).",
        )
        .method::<CreateRepo, Repository>(
            "create_repo",
            "Creates a repository for the token's user or an organization.",
        )
        .method::<CreateIssue, Issue>("create_issue", "Opens an issue.")
        .method::<CloseIssue, Issue>("close_issue", "Closes an issue as completed or not planned.")
        .method::<CommentIssue, Comment>(
            "comment_issue",
            "Comments on an issue or pull request.",
        )
        .method::<CreatePullRequest, PullRequest>("create_pull_request", "Opens a pull request.")
        .method::<ListIssues, Page<Issue>>(
            "list_issues",
            "Lists a repository's issues, following Link-header pagination for up to `max_pages` pages.",
        )
        .config_schema::<GithubConfig>()
        .credential_schema::<GithubCredentials>()
        .host("{api_base}")
        .auth(Auth::new(AuthScheme::Bearer("token".into())))
        .webhook(
            WebhookConfig::new(WebhookScheme::Github("webhook_secret".into()))
                .delivery_id_header("X-GitHub-Delivery"),
        )
        // GitHub's secondary limit on content-creating requests.
        .rate_limit(80, Duration::from_secs(60), 20)
    }

    fn invoke(method: &str, params: Params) -> Result<Output> {
        match method {
            "create_repo" => params.call(repos::create_repo),
            "create_issue" => params.call(issues::create_issue),
            "close_issue" => params.call(issues::close_issue),
            "comment_issue" => params.call(issues::comment_issue),
            "create_pull_request" => params.call(issues::create_pull_request),
            "list_issues" => params.call(issues::list_issues),
            other => Err(Error::unknown_method(other)),
        }
    }

    fn test_connection() -> Result<String> {
        let me: Value = api::send(Request::get(api::url("/user")?))?.json()?;
        Ok(format!(
            "authenticated as {}",
            me["login"].as_str().unwrap_or("an unnamed account")
        ))
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        let body: Value = request.json()?;
        let found = events::event(
            request.header("x-github-event"),
            request.header("x-github-delivery"),
            &body,
        )?;
        let mut outcome = WebhookOutcome::new();
        if let Some((kind, id, payload)) = found {
            outcome = outcome.event(Event::new(kind, id, &payload)?);
        }
        Ok(outcome)
    }
}

plugboard_guest::export_connector!(Github);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest() {
        let m = Github::manifest();
        assert_eq!(m.hosts, ["{api_base}"]);
        assert_eq!(
            m.config_schema["properties"]["api_base"]["default"],
            "https://api.github.com"
        );
        let create = &m.methods[1].params_schema;
        assert_eq!(create["required"], json!(["owner", "repo", "title"]));
        assert_eq!(create["additionalProperties"], false);
        assert!(create["properties"]["repo"]["pattern"].is_string());
    }
}
