//! `freshdesk`: the Freshdesk help desk (API v2).
//!
//! Auth is basic `api_key:X`, applied by the host to `{api_base}` (by
//! default `https://{domain}.freshdesk.com`). Methods create and change
//! tickets, add notes, replies and time entries, create contacts, and list
//! or search tickets with pagination. Webhooks from Freshdesk automation
//! rules are checked by the host against a shared secret header
//! (`X-Webhook-Secret`) and normalized into `ticket.*`, `note.created` and
//! `contact.*` events (see [`webhook`]).

mod api;
mod contacts;
mod tickets;
mod webhook;

use std::time::Duration;

use plugboard_guest::http::Request;
use plugboard_guest::prelude::*;

use api::{FreshdeskConfig, FreshdeskCredentials};
use contacts::{Contact, CreateContact};
use plugboard_guest::http::Page;
use tickets::{
    AddNote, AddReply, AddTimeEntry, AssignTicket, ChangeStatus, Conversation, CreateTicket,
    ListTickets, SearchResult, SearchTickets, Ticket, TimeEntry, UpdateTicket,
};

/// The header carrying the shared webhook secret.
pub const SECRET_HEADER: &str = "X-Webhook-Secret";

/// The connector.
struct Freshdesk;

impl Connector for Freshdesk {
    fn manifest() -> Manifest {
        Manifest::new(
            "freshdesk",
            env!("CARGO_PKG_VERSION"),
            "Freshdesk help desk: tickets (create, update, assign, status, notes, replies, time \
             entries), contacts, list and search with pagination; webhooks from automation rules \
             as ticket.*, note.created and contact.* events.",
        )
        .method::<CreateTicket, Ticket>("create_ticket", "Creates a ticket.")
        .method::<UpdateTicket, Ticket>("update_ticket", "Changes fields of a ticket.")
        .method::<AssignTicket, Ticket>(
            "assign_ticket",
            "Assigns a ticket to an agent and/or a group.",
        )
        .method::<ChangeStatus, Ticket>("change_status", "Sets a ticket's status.")
        .method::<AddNote, Conversation>(
            "add_note",
            "Adds a (by default private) note to a ticket.",
        )
        .method::<AddReply, Conversation>("add_reply", "Replies to a ticket's requester.")
        .method::<AddTimeEntry, TimeEntry>("add_time_entry", "Logs time spent on a ticket.")
        .method::<CreateContact, Contact>("create_contact", "Creates a contact.")
        .method::<ListTickets, Page<Ticket>>(
            "list_tickets",
            "Lists tickets, following Link-header pagination for up to `max_pages` pages.",
        )
        .method::<SearchTickets, SearchResult>(
            "search_tickets",
            "Searches tickets with a Freshdesk filter query (30 per page, 10 pages at most).",
        )
        .config_schema::<FreshdeskConfig>()
        .credential_schema::<FreshdeskCredentials>()
        .host("{api_base}")
        .auth(Auth::new(AuthScheme::Basic(BasicAuth {
            username: "{api_key}".into(),
            password: "X".into(),
        })))
        .webhook(WebhookConfig::new(WebhookScheme::SharedSecret(
            SharedSecret {
                header: SECRET_HEADER.into(),
                secret_field: "webhook_secret".into(),
            },
        )))
        // The smallest plan's per-minute limit; raise it per connector with
        // `PUT /v1/connectors/freshdesk/rate-limit` on bigger plans.
        .rate_limit(100, Duration::from_secs(60), 10)
    }

    fn invoke(method: &str, params: Params) -> Result<Output> {
        match method {
            "create_ticket" => params.call(tickets::create_ticket),
            "update_ticket" => params.call(tickets::update_ticket),
            "assign_ticket" => params.call(tickets::assign_ticket),
            "change_status" => params.call(tickets::change_status),
            "add_note" => params.call(tickets::add_note),
            "add_reply" => params.call(tickets::add_reply),
            "add_time_entry" => params.call(tickets::add_time_entry),
            "create_contact" => params.call(contacts::create_contact),
            "list_tickets" => params.call(tickets::list_tickets),
            "search_tickets" => params.call(tickets::search_tickets),
            other => Err(Error::unknown_method(other)),
        }
    }

    fn test_connection() -> Result<String> {
        #[derive(Deserialize)]
        struct Me {
            contact: Option<Value>,
        }
        let me: Me = api::send(Request::get(api::url("/api/v2/agents/me")?))?.json()?;
        let contact = me.contact.unwrap_or(Value::Null);
        let name = contact["name"].as_str().unwrap_or("an agent");
        Ok(match contact["email"].as_str() {
            Some(email) => format!("connected as {name} <{email}>"),
            None => format!("connected as {name}"),
        })
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        let body: Value = request.json()?;
        let event = webhook::normalize(&body, request.query_param("event").as_deref())?;
        Ok(WebhookOutcome::new().event(Event::new(event.kind, event.id, &event.payload)?))
    }
}

plugboard_guest::export_connector!(Freshdesk);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_declares_auth_hosts_and_schemas() {
        let m = Freshdesk::manifest();
        assert_eq!(m.hosts, ["{api_base}"]);
        assert_eq!(m.methods.len(), 10);
        let config = &m.config_schema;
        assert_eq!(
            config["properties"]["api_base"]["default"],
            "https://{domain}.freshdesk.com"
        );
        assert_eq!(config["additionalProperties"], false);
        assert!(config["anyOf"].is_array(), "{config}");
        let create = &m.methods[0].params_schema;
        assert_eq!(create["required"], json!(["subject", "description"]));
        assert_eq!(create["properties"]["priority"]["maximum"], 4);
        assert_eq!(create["additionalProperties"], false);
        let time = m
            .methods
            .iter()
            .find(|x| x.name == "add_time_entry")
            .unwrap();
        assert!(
            time.params_schema["properties"]["time_spent"]["pattern"]
                .as_str()
                .is_some()
        );
        assert!(matches!(
            m.webhook.unwrap().scheme,
            WebhookScheme::SharedSecret(_)
        ));
    }
}
