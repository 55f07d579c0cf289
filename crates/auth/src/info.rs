//! The public description of a key: what `keys list|show` and the admin API return. It holds
//! nothing secret (no hash, no sealed secret), and its `status` is the effective one at the
//! time it was made (a grace period that has ended reads `expired` even before the sweep).

use serde::Serialize;
use store::keys::{Environment, KeyKind, KeyRecord, KeyStatus, RateLimit};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub principal: String,
    #[serde(rename = "type")]
    pub kind: KeyKind,
    pub environment: Environment,
    pub name: String,
    pub scopes: Vec<String>,
    pub status: KeyStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<i64>,
    pub version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: i64,
    pub created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
    /// True when the key is older than its rotation policy's maximum age.
    pub rotation_due: bool,
    /// For `hmac` keys: the master key its secret is sealed under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_id: Option<String>,
}

impl KeyInfo {
    pub fn new(r: &KeyRecord, now: i64) -> Self {
        let expired = r.expires_at.is_some_and(|t| t <= now)
            || (r.status == KeyStatus::Grace && r.grace_until.is_some_and(|t| t <= now));
        let status = match r.status {
            KeyStatus::Active | KeyStatus::Grace if expired => KeyStatus::Expired,
            other => other,
        };
        let rotation_due = status == KeyStatus::Active
            && r.max_age_secs.is_some_and(|max| {
                now.saturating_sub(r.created_at)
                    >= i64::try_from(max)
                        .unwrap_or(i64::MAX)
                        .saturating_mul(1_000_000)
            });
        Self {
            id: r.id.clone(),
            principal: r.principal.clone(),
            kind: r.kind,
            environment: r.environment,
            name: r.name.clone(),
            scopes: r.scopes.clone(),
            status,
            grace_until: r.grace_until,
            version: r.version,
            replaces: r.replaces.clone(),
            replaced_by: r.replaced_by.clone(),
            metadata: r.metadata.clone(),
            created_at: r.created_at,
            created_by: r.created_by.clone(),
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            revoked_reason: r.revoked_reason.clone(),
            last_used_at: r.last_used_at,
            last_used_addr: r.last_used_addr.clone(),
            rate_limit: r.rate_limit,
            max_age_secs: r.max_age_secs,
            rotation_due,
            master_key_id: r.sealed.as_ref().map(|s| s.master_key_id.clone()),
        }
    }
}

/// The response that shows a new key's credential, exactly once:
/// `{"id", "token"|"secret", "key": KeyInfo}` (`token` for bearer keys, `secret` for hmac keys;
/// ed25519 keys have neither: the client holds the private key).
pub fn issued_json(
    record: &KeyRecord,
    secret: Option<crate::SecretString>,
    now: i64,
) -> serde_json::Value {
    let mut out = serde_json::json!({ "id": record.id, "key": KeyInfo::new(record, now) });
    if let Some(secret) = secret {
        let field = if record.kind == KeyKind::Hmac {
            "secret"
        } else {
            "token"
        };
        out[field] = serde_json::Value::String(secret.expose().to_string());
    }
    out
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub(crate) fn record() -> KeyRecord {
        KeyRecord {
            id: "key_a".into(),
            principal: "p".into(),
            kind: KeyKind::Bearer,
            environment: Environment::Test,
            name: "a".into(),
            scopes: vec!["market:read".into()],
            status: KeyStatus::Active,
            grace_until: None,
            version: 1,
            replaces: None,
            replaced_by: None,
            metadata: serde_json::json!({}),
            created_at: 0,
            created_by: "t".into(),
            expires_at: None,
            revoked_at: None,
            revoked_reason: None,
            token_hash: Some([1; 32]),
            public_key: None,
            sealed: None,
            rate_limit: None,
            max_age_secs: Some(90 * 86_400),
            rotated_at: None,
            last_used_at: None,
            last_used_addr: None,
            rev: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::record;
    use super::*;

    #[test]
    fn rotation_policy_and_effective_status() {
        let day = 86_400_000_000;
        let r = record();
        assert!(!KeyInfo::new(&r, 89 * day).rotation_due);
        assert!(KeyInfo::new(&r, 90 * day).rotation_due);
        let mut grace = r.clone();
        grace.status = KeyStatus::Grace;
        grace.grace_until = Some(day);
        assert_eq!(KeyInfo::new(&grace, day - 1).status, KeyStatus::Grace);
        assert_eq!(KeyInfo::new(&grace, day).status, KeyStatus::Expired);
        assert!(!KeyInfo::new(&grace, 100 * day).rotation_due);
        let json = serde_json::to_string(&KeyInfo::new(&r, 0)).unwrap();
        assert!(!json.contains("token_hash") && !json.contains("sealed"));
    }
}
