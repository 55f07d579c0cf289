//! [`UiState`]: what the dashboard's handlers share (its settings and the session key).

use super::config;
use super::session::{self, SessionKeys};
use crate::server_error::ServerError;
use auth::KeyRing;
use auth::secret::SecretKey32;

/// What the dashboard's handlers share: its settings and the session key.
#[derive(Debug)]
pub struct UiState {
    pub config: config::UiConfig,
    pub sessions: SessionKeys,
}

impl UiState {
    /// The session key derives from the current master key when there is one (shared by
    /// every node, stable across restarts), else it is random for this process.
    pub fn new(config: &config::UiConfig, ring: &KeyRing) -> Result<Self, ServerError> {
        let key = match ring.current() {
            Some(master) => master.derive(session::LABEL),
            None => SecretKey32::random()
                .map_err(|_| ServerError::Auth("no randomness for the session key".into()))?,
        };
        Ok(Self {
            config: config.clone(),
            sessions: SessionKeys::new(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth::MasterKey;

    fn ring(hex: &str) -> KeyRing {
        KeyRing::new(Some(MasterKey::from_hex(hex, "test").unwrap()), vec![])
    }

    /// Cluster mode and restarts: any gateway with the same master key accepts the cookie;
    /// another master key (or none: a random session key) does not.
    #[test]
    fn gateways_sharing_the_master_key_share_sessions() {
        let config = config::UiConfig::default();
        let a = UiState::new(&config, &ring(&"ab".repeat(32))).unwrap();
        let b = UiState::new(&config, &ring(&"ab".repeat(32))).unwrap();
        let other = UiState::new(&config, &ring(&"cd".repeat(32))).unwrap();
        let none = UiState::new(&config, &KeyRing::default()).unwrap();
        let (cookie, session) = a.sessions.mint("key_abc", 2_000).unwrap();
        assert_eq!(b.sessions.verify(&cookie, 1_000).unwrap(), session);
        assert!(
            b.sessions
                .csrf_matches(&session, &a.sessions.csrf(&session))
        );
        assert!(other.sessions.verify(&cookie, 1_000).is_err());
        assert!(none.sessions.verify(&cookie, 1_000).is_err());
        let (random, _) = none.sessions.mint("key_abc", 2_000).unwrap();
        let restarted = UiState::new(&config, &KeyRing::default()).unwrap();
        assert!(restarted.sessions.verify(&random, 1_000).is_err());
    }
}
