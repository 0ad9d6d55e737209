//! The process-wide half of the broker: the outbound client and the egress
//! settings every invocation's hooks share.

use std::sync::Arc;

use super::client::OutboundClient;
use super::ip::IpPolicy;
use crate::config::EgressSettings;

/// Shared egress state.
pub struct Broker {
    settings: EgressSettings,
    client: OutboundClient,
}

impl Broker {
    /// Builds the client for these settings.
    pub fn new(settings: EgressSettings) -> Self {
        let policy = Arc::new(IpPolicy::new(settings.allow_cidrs.clone()));
        let client = OutboundClient::new(policy, settings.connect_timeout);
        Self { settings, client }
    }

    /// The settings.
    pub fn settings(&self) -> &EgressSettings {
        &self.settings
    }

    /// The pooled client.
    pub fn client(&self) -> &OutboundClient {
        &self.client
    }
}
