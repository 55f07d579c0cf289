//! `[alerts]` settings.

use crate::webhook::address::AddressPolicy;
use crate::webhook::schedule::RetrySchedule;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[alerts]`: rules on live data and their delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Evaluate rules and deliver alerts (the `/v1/alerts` and `/v1/webhooks` routes answer
    /// either way; with `false` nothing fires).
    pub enabled: bool,
    /// Rules one principal may have (paused, expired and completed ones count until deleted).
    pub max_rules_per_principal: u64,
    /// Webhook endpoints one principal may have.
    pub max_endpoints_per_principal: u64,
    /// How often each evaluator reads rule changes from the store, ms (changes made through
    /// this gateway apply at once; this bounds how late changes made elsewhere are seen).
    pub poll_interval_ms: u64,
    /// `[alerts.delivery]`: webhooks.
    pub delivery: DeliveryConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_rules_per_principal: 1000,
            max_endpoints_per_principal: 10,
            poll_interval_ms: 250,
            delivery: DeliveryConfig::default(),
        }
    }
}

/// `[alerts.delivery]`: how webhooks are sent and retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Deliveries in flight to one endpoint at once (an endpoint may lower or raise it).
    pub max_in_flight: u32,
    /// Seconds to wait for an endpoint's answer (an endpoint may set its own).
    pub timeout_secs: u32,
    /// First retry waits up to this many seconds; each later one up to twice the previous.
    pub retry_base_secs: u64,
    /// No retry waits longer than this.
    pub retry_max_delay_secs: u64,
    /// Attempts in all before a delivery is dead.
    pub max_attempts: u32,
    /// Addresses (CIDR blocks) webhooks may go to although they are loopback, private,
    /// link-local, shared or otherwise special, e.g. `["10.20.0.0/16"]`. Empty: public
    /// addresses only.
    pub allow_addresses: Vec<String>,
    /// Hours a delivered delivery is kept (visible in `/v1/webhooks/{id}/deliveries`).
    pub delivered_retention_hours: u64,
    /// Days a dead delivery is kept for `redeliver`.
    pub dead_retention_days: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let schedule = RetrySchedule::default();
        Self {
            max_in_flight: 4,
            timeout_secs: 10,
            retry_base_secs: schedule.base.as_secs(),
            retry_max_delay_secs: schedule.max_delay.as_secs(),
            max_attempts: schedule.max_attempts,
            allow_addresses: Vec::new(),
            delivered_retention_hours: 24,
            dead_retention_days: 7,
        }
    }
}

impl DeliveryConfig {
    pub fn schedule(&self) -> RetrySchedule {
        RetrySchedule {
            base: Duration::from_secs(self.retry_base_secs),
            max_delay: Duration::from_secs(self.retry_max_delay_secs),
            max_attempts: self.max_attempts,
        }
    }

    /// The allow-list (validated by [`AlertsConfig::validate`]).
    pub fn policy(&self) -> AddressPolicy {
        AddressPolicy::parse(&self.allow_addresses).unwrap_or_default()
    }
}

/// Limits of one endpoint's own settings.
pub const MAX_IN_FLIGHT: u32 = 64;
pub const MAX_TIMEOUT_SECS: u32 = 60;

impl AlertsConfig {
    /// Checks the ranges; the error is `(key, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let d = &self.delivery;
        let ranges: [(&str, u64, u64, u64); 10] = [
            (
                "alerts.max_rules_per_principal",
                self.max_rules_per_principal,
                1,
                1_000_000,
            ),
            (
                "alerts.max_endpoints_per_principal",
                self.max_endpoints_per_principal,
                1,
                1000,
            ),
            ("alerts.poll_interval_ms", self.poll_interval_ms, 10, 60_000),
            (
                "alerts.delivery.max_in_flight",
                u64::from(d.max_in_flight),
                1,
                u64::from(MAX_IN_FLIGHT),
            ),
            (
                "alerts.delivery.timeout_secs",
                u64::from(d.timeout_secs),
                1,
                u64::from(MAX_TIMEOUT_SECS),
            ),
            (
                "alerts.delivery.retry_base_secs",
                d.retry_base_secs,
                1,
                3600,
            ),
            (
                "alerts.delivery.retry_max_delay_secs",
                d.retry_max_delay_secs,
                d.retry_base_secs,
                86_400,
            ),
            (
                "alerts.delivery.max_attempts",
                u64::from(d.max_attempts),
                1,
                100,
            ),
            (
                "alerts.delivery.delivered_retention_hours",
                d.delivered_retention_hours,
                1,
                24 * 365,
            ),
            (
                "alerts.delivery.dead_retention_days",
                d.dead_retention_days,
                1,
                365,
            ),
        ];
        for (key, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err((key.into(), format!("must be between {low} and {high}")));
            }
        }
        AddressPolicy::parse(&d.allow_addresses)
            .map_err(|e| ("alerts.delivery.allow_addresses".into(), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_their_key() {
        assert!(AlertsConfig::default().validate().is_ok());
        let mut c = AlertsConfig::default();
        c.delivery.allow_addresses = vec!["10.0.0.0/40".into()];
        assert_eq!(
            c.validate().unwrap_err().0,
            "alerts.delivery.allow_addresses"
        );
        let mut c = AlertsConfig::default();
        c.delivery.retry_max_delay_secs = 1;
        assert_eq!(
            c.validate().unwrap_err().0,
            "alerts.delivery.retry_max_delay_secs"
        );
        let mut c = AlertsConfig::default();
        c.delivery.max_in_flight = 0;
        assert_eq!(c.validate().unwrap_err().0, "alerts.delivery.max_in_flight");
        assert_eq!(
            AlertsConfig::default().delivery.schedule(),
            RetrySchedule::default()
        );
    }
}
