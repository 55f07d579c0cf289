//! `[ui]`: the built-in dashboard (docs/dashboard.md).

use crate::config_error::ConfigError;
use serde::{Deserialize, Serialize};

/// Shortest and longest dashboard session a configuration may set, seconds.
pub const SESSION_TTL_RANGE: (u64, u64) = (60, 43_200);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Serve the dashboard at `/ui/` (and redirect `/` there). `false`: those routes answer
    /// `404 not_found` and no session cookie is ever issued.
    pub enabled: bool,
    /// Lifetime of a dashboard login (the signed session cookie), seconds. The key behind it is
    /// checked on every use, so a revocation or expiry applies at once whatever this says.
    pub session_ttl_secs: u64,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl_secs: 1800,
        }
    }
}

impl UiConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (min, max) = SESSION_TTL_RANGE;
        if !(min..=max).contains(&self.session_ttl_secs) {
            return Err(ConfigError::new(
                "ui.session_ttl_secs",
                format!(
                    "must be between {min} and {max}, got {}",
                    self.session_ttl_secs
                ),
            ));
        }
        Ok(())
    }
}
