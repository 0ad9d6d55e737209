//! Ticket methods: create, update, assign, change status, notes, replies,
//! time entries, list and search.
//!
//! Parameter types deny unknown fields, so the host refuses a misspelt
//! field against the schema before any request leaves; optional fields
//! that are absent are not sent at all (Freshdesk treats `null` as "clear
//! this field").

use plugboard_guest::http::Request;
use plugboard_guest::prelude::*;
use plugboard_guest::serde_json::{Map, json};

use plugboard_guest::http::Page;

use crate::api;

/// A Freshdesk ticket as the API returns it: the common fields typed, all
/// others passed through.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Ticket {
    /// Ticket id.
    pub id: u64,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Status: 2 Open, 3 Pending, 4 Resolved, 5 Closed (or a custom status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    /// Priority: 1 Low, 2 Medium, 3 High, 4 Urgent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Requester's contact id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_id: Option<u64>,
    /// Assigned agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_id: Option<u64>,
    /// Assigned group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<u64>,
    /// Every other field Freshdesk returned (`tags`, `created_at`, …).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Fields a ticket is created with.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTicket {
    /// Subject.
    #[schemars(length(min = 1))]
    pub subject: String,
    /// HTML content of the ticket.
    pub description: String,
    /// Requester's email; a contact is created if none exists. One of
    /// `email`, `requester_id` or `phone` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(email)]
    pub email: Option<String>,
    /// Requester's contact id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_id: Option<u64>,
    /// Requester's phone (then `name` is required by Freshdesk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Requester's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1 Low, 2 Medium, 3 High, 4 Urgent (Freshdesk's default: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4))]
    pub priority: Option<u8>,
    /// 2 Open, 3 Pending, 4 Resolved, 5 Closed (Freshdesk's default: 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2))]
    pub status: Option<u32>,
    /// 1 Email, 2 Portal, 3 Phone, 7 Chat, 9 Feedback widget, 10 Outbound email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<u32>,
    /// Ticket type, e.g. `Incident`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ticket_type: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Addresses in CC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc_emails: Option<Vec<String>>,
    /// Group to assign to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<u64>,
    /// Agent to assign to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_id: Option<u64>,
    /// Custom fields by name (`cf_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Map<String, Value>>,
}

/// `create_ticket`: `POST /api/v2/tickets`.
pub fn create_ticket(p: CreateTicket) -> Result<Ticket> {
    if p.email.is_none() && p.requester_id.is_none() && p.phone.is_none() {
        return Err(Error::invalid_input(
            "one of `email`, `requester_id` or `phone` is required",
        ));
    }
    api::send(Request::post(api::url("/api/v2/tickets")?).json(&p))?.json()
}

/// Fields to change on a ticket; at least one.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTicket {
    /// Ticket id.
    #[serde(skip_serializing)]
    pub id: u64,
    /// New subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// New HTML description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// 1 Low, 2 Medium, 3 High, 4 Urgent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4))]
    pub priority: Option<u8>,
    /// 2 Open, 3 Pending, 4 Resolved, 5 Closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2))]
    pub status: Option<u32>,
    /// Ticket type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ticket_type: Option<String>,
    /// Tags (replace the existing ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<u64>,
    /// Agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_id: Option<u64>,
    /// Due date (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_by: Option<String>,
    /// Custom fields by name (`cf_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Map<String, Value>>,
}

/// `PUT /api/v2/tickets/{id}` with `body`.
fn put_ticket(id: u64, body: &impl Serialize) -> Result<Ticket> {
    api::send(Request::put(api::url(&format!("/api/v2/tickets/{id}"))?).json(body))?.json()
}

/// `update_ticket`.
pub fn update_ticket(p: UpdateTicket) -> Result<Ticket> {
    let body = plugboard_guest::serde_json::to_value(&p)
        .map_err(|e| Error::permanent(format!("cannot encode the update: {e}")))?;
    if body.as_object().is_none_or(Map::is_empty) {
        return Err(Error::invalid_input(
            "give at least one field to change besides `id`",
        ));
    }
    put_ticket(p.id, &body)
}

/// Parameters of `assign_ticket`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignTicket {
    /// Ticket id.
    pub id: u64,
    /// Agent to assign to.
    #[serde(default)]
    pub responder_id: Option<u64>,
    /// Group to assign to.
    #[serde(default)]
    pub group_id: Option<u64>,
}

/// `assign_ticket`: `PUT /api/v2/tickets/{id}` with the agent and/or group.
pub fn assign_ticket(p: AssignTicket) -> Result<Ticket> {
    let mut body = Map::new();
    if let Some(agent) = p.responder_id {
        body.insert("responder_id".into(), json!(agent));
    }
    if let Some(group) = p.group_id {
        body.insert("group_id".into(), json!(group));
    }
    if body.is_empty() {
        return Err(Error::invalid_input(
            "give `responder_id`, `group_id` or both",
        ));
    }
    put_ticket(p.id, &body)
}

/// Parameters of `change_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeStatus {
    /// Ticket id.
    pub id: u64,
    /// 2 Open, 3 Pending, 4 Resolved, 5 Closed, or a custom status id.
    #[schemars(range(min = 2))]
    pub status: u32,
}

/// `change_status`: `PUT /api/v2/tickets/{id}` with `{"status": n}`.
pub fn change_status(p: ChangeStatus) -> Result<Ticket> {
    put_ticket(p.id, &json!({ "status": p.status }))
}

/// A note or reply (a "conversation" in Freshdesk's words).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Conversation {
    /// Conversation id.
    pub id: u64,
    /// The ticket it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<u64>,
    /// HTML body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Whether only agents see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
    /// Every other field Freshdesk returned.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Parameters of `add_note`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNote {
    /// Ticket id.
    #[serde(skip_serializing)]
    pub id: u64,
    /// HTML content.
    #[schemars(length(min = 1))]
    pub body: String,
    /// Visible to agents only (default `true`).
    #[serde(default = "yes")]
    pub private: bool,
    /// Agents to notify by email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_emails: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

/// `add_note`: `POST /api/v2/tickets/{id}/notes`.
pub fn add_note(p: AddNote) -> Result<Conversation> {
    let url = api::url(&format!("/api/v2/tickets/{}/notes", p.id))?;
    api::send(Request::post(url).json(&p))?.json()
}

/// Parameters of `add_reply`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddReply {
    /// Ticket id.
    #[serde(skip_serializing)]
    pub id: u64,
    /// HTML content sent to the requester.
    #[schemars(length(min = 1))]
    pub body: String,
    /// Support address to send from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_email: Option<String>,
    /// Addresses in CC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc_emails: Option<Vec<String>>,
    /// Addresses in BCC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bcc_emails: Option<Vec<String>>,
}

/// `add_reply`: `POST /api/v2/tickets/{id}/reply`.
pub fn add_reply(p: AddReply) -> Result<Conversation> {
    let url = api::url(&format!("/api/v2/tickets/{}/reply", p.id))?;
    api::send(Request::post(url).json(&p))?.json()
}

/// Parameters of `add_time_entry`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTimeEntry {
    /// Ticket id.
    #[serde(skip_serializing)]
    pub id: u64,
    /// Time spent, `hh:mm`.
    #[schemars(pattern(r"^[0-9]{2,3}:[0-5][0-9]$"))]
    pub time_spent: String,
    /// What was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Billable (Freshdesk's default: `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
    /// Agent who spent the time (default: the API key's agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<u64>,
    /// When the work was done (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed_at: Option<String>,
}

/// A time entry.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TimeEntry {
    /// Time entry id.
    pub id: u64,
    /// `hh:mm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_spent: Option<String>,
    /// Every other field Freshdesk returned.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `add_time_entry`: `POST /api/v2/tickets/{id}/time_entries`.
pub fn add_time_entry(p: AddTimeEntry) -> Result<TimeEntry> {
    let url = api::url(&format!("/api/v2/tickets/{}/time_entries", p.id))?;
    api::send(Request::post(url).json(&p))?.json()
}

/// Parameters of `list_tickets`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTickets {
    /// A predefined filter: `new_and_my_open`, `watching`, `spam`, `deleted`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Only tickets updated since (RFC 3339); without it Freshdesk lists
    /// the last 30 days.
    #[serde(default)]
    pub updated_since: Option<String>,
    /// `created_at`, `due_by`, `updated_at` or `status`.
    #[serde(default)]
    pub order_by: Option<String>,
    /// `asc` or `desc`.
    #[serde(default)]
    pub order_type: Option<String>,
    /// Tickets per page (Freshdesk: 1-100, default 30).
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

/// `list_tickets`: `GET /api/v2/tickets`, following `Link: rel="next"`.
pub fn list_tickets(p: ListTickets) -> Result<Page<Ticket>> {
    let mut r = Request::get(api::url("/api/v2/tickets")?);
    for (name, value) in [
        ("filter", p.filter),
        ("updated_since", p.updated_since),
        ("order_by", p.order_by),
        ("order_type", p.order_type),
        ("per_page", p.per_page.map(|n| n.to_string())),
    ] {
        if let Some(value) = value {
            r = r.query(name, value);
        }
    }
    r = r.query("page", p.page.unwrap_or(1).to_string());
    api::follow_pages(r, p.max_pages.unwrap_or(1).clamp(1, 10))
}

/// Parameters of `search_tickets`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchTickets {
    /// Freshdesk filter query without the surrounding quotes, e.g.
    /// `priority:4 AND status:2` (at most 512 characters).
    #[schemars(length(min = 1, max = 512))]
    pub query: String,
    /// Page, 1-10 (30 results each).
    #[serde(default)]
    #[schemars(range(min = 1, max = 10))]
    pub page: Option<u32>,
}

/// What `search_tickets` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchResult {
    /// Matching tickets on this page.
    pub items: Vec<Ticket>,
    /// Matches in all (Freshdesk serves at most 300, 30 per page).
    pub total: u64,
    /// The next page, if there are more results Freshdesk will serve.
    pub next_page: Option<u32>,
}

/// Freshdesk's page size for searches, and how many pages it serves.
const SEARCH_PAGE: u64 = 30;
const SEARCH_MAX_PAGES: u32 = 10;

/// `search_tickets`: `GET /api/v2/search/tickets?query="…"&page=n`.
pub fn search_tickets(p: SearchTickets) -> Result<SearchResult> {
    #[derive(Deserialize)]
    struct Found {
        results: Vec<Ticket>,
        total: u64,
    }
    let page = p.page.unwrap_or(1);
    let found: Found = api::send(
        Request::get(api::url("/api/v2/search/tickets")?)
            .query("query", format!("\"{}\"", p.query))
            .query("page", page.to_string()),
    )?
    .json()?;
    let seen = u64::from(page) * SEARCH_PAGE;
    let next_page = (found.total > seen && page < SEARCH_MAX_PAGES).then_some(page + 1);
    Ok(SearchResult {
        items: found.results,
        total: found.total,
        next_page,
    })
}
