//! Contact methods.

use plugboard_guest::http::Request;
use plugboard_guest::prelude::*;
use plugboard_guest::serde_json::Map;

use crate::api;

/// Fields a contact is created with.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContact {
    /// Full name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Primary email. One of `email`, `phone`, `mobile`, `twitter_id` or
    /// `unique_external_id` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(email)]
    pub email: Option<String>,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Mobile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// Twitter handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twitter_id: Option<String>,
    /// Your own id for the contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_external_id: Option<String>,
    /// Company id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_id: Option<u64>,
    /// Job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Custom fields by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Map<String, Value>>,
}

/// A Freshdesk contact: the common fields typed, all others passed through.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Contact {
    /// Contact id.
    pub id: u64,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Every other field Freshdesk returned.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `create_contact`: `POST /api/v2/contacts`.
pub fn create_contact(p: CreateContact) -> Result<Contact> {
    if [
        &p.email,
        &p.phone,
        &p.mobile,
        &p.twitter_id,
        &p.unique_external_id,
    ]
    .iter()
    .all(|v| v.is_none())
    {
        return Err(Error::invalid_input(
            "one of `email`, `phone`, `mobile`, `twitter_id` or `unique_external_id` is required",
        ));
    }
    api::send(Request::post(api::url("/api/v2/contacts")?).json(&p))?.json()
}
