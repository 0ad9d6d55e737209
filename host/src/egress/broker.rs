//! The process-wide half of the broker: the outbound client, the egress
//! settings, and the state every invocation's hooks share — rate budgets,
//! circuit breakers and the per-instance usage figures.

use std::sync::Arc;

use super::breaker::Breakers;
use super::budget::Budgets;
use super::client::OutboundClient;
use super::ip::IpPolicy;
use crate::config::EgressSettings;
use crate::usage::Usage;

/// Shared egress state.
pub struct Broker {
    settings: EgressSettings,
    client: OutboundClient,
    budgets: Budgets,
    breakers: Breakers,
    usage: Usage,
}

impl Broker {
    /// Builds the client and the shared state for these settings.
    pub fn new(settings: EgressSettings) -> Self {
        let policy = Arc::new(IpPolicy::new(settings.allow_cidrs.clone()));
        let client = OutboundClient::new(policy, &settings);
        Self {
            budgets: Budgets::with_max_waiters(settings.max_queued),
            breakers: Breakers::new(settings.breaker.clone()),
            usage: Usage::default(),
            settings,
            client,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &EgressSettings {
        &self.settings
    }

    /// The pooled client.
    pub fn client(&self) -> &OutboundClient {
        &self.client
    }

    /// Rate budgets, shared by all invocations.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// One circuit per upstream.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// Per-instance usage: calls and outbound attempts over time windows.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }
}
