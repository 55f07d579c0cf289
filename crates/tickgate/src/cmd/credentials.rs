//! How the CLI authenticates to a running gateway: a bearer token, or requests signed (RFC
//! 9421) with an `hmac` or `ed25519` key through the SDK's signer, the one implementation
//! shared by `keys`/`audit --url` and `tail`/`book`.

use anyhow::{Context, bail};
use auth::SecretString;
use clap::Args;
use client::Credentials;
use std::path::{Path, PathBuf};

/// Environment variable holding an hmac secret (never a command-line flag: command lines are
/// visible to other users).
pub const HMAC_SECRET_ENV: &str = "TICKGATE_HMAC_SECRET";

/// Signing options, shared by every command that talks to a gateway.
#[derive(Debug, Args, Clone, Default)]
pub struct SignArgs {
    /// Sign requests (RFC 9421) with this hmac or ed25519 key (`key_…`) instead of sending a
    /// bearer token; needs --hmac-secret-file, TICKGATE_HMAC_SECRET or --ed25519-key.
    #[arg(long, env = "TICKGATE_KEY_ID")]
    pub key_id: Option<String>,
    /// File holding the hmac key's secret (`tg_…`, as printed once by `keys create --type
    /// hmac`). The environment variable TICKGATE_HMAC_SECRET may hold the secret instead.
    #[arg(long, conflicts_with = "ed25519_key")]
    pub hmac_secret_file: Option<PathBuf>,
    /// PEM file with the ed25519 private key (PKCS#8, from `openssl genpkey -algorithm
    /// ed25519` or `keys create --type ed25519 --generate-keypair`).
    #[arg(long, env = "TICKGATE_ED25519_KEY")]
    pub ed25519_key: Option<PathBuf>,
}

fn read_secret_file(path: &Path, what: &str) -> anyhow::Result<String> {
    // The path is named, the content never.
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

impl SignArgs {
    /// Signed credentials when signing is configured, `None` when it is not.
    pub fn credentials(&self) -> anyhow::Result<Option<Credentials>> {
        let env_secret = std::env::var(HMAC_SECRET_ENV)
            .ok()
            .filter(|s| !s.is_empty());
        let Some(key_id) = &self.key_id else {
            if self.hmac_secret_file.is_some() || self.ed25519_key.is_some() || env_secret.is_some()
            {
                bail!("signing needs the key's id: set --key-id or TICKGATE_KEY_ID");
            }
            return Ok(None);
        };
        let credentials = match (&self.hmac_secret_file, env_secret, &self.ed25519_key) {
            (Some(_), _, Some(_)) => bail!("give either an hmac secret or --ed25519-key, not both"),
            (None, Some(_), Some(_)) => {
                bail!("give either an hmac secret ({HMAC_SECRET_ENV}) or --ed25519-key, not both")
            }
            (Some(path), _, None) => {
                let secret = zeroize::Zeroizing::new(read_secret_file(path, "hmac secret file")?);
                Credentials::hmac(key_id.clone(), secret.trim())
            }
            (None, Some(secret), None) => {
                let secret = zeroize::Zeroizing::new(secret);
                Credentials::hmac(key_id.clone(), secret.trim())
            }
            (None, None, Some(path)) => {
                let pem = zeroize::Zeroizing::new(read_secret_file(path, "ed25519 key file")?);
                Credentials::ed25519_pem(key_id.clone(), &pem)
            }
            (None, None, None) => bail!(
                "--key-id needs the key: --hmac-secret-file, {HMAC_SECRET_ENV} or --ed25519-key"
            ),
        };
        Ok(Some(credentials?))
    }
}

/// Signed credentials if configured, else the bearer token if given, else `None`. Signing
/// takes precedence: a bearer token in the environment does not override `--key-id`.
pub fn resolve(
    sign: &SignArgs,
    bearer: Option<&SecretString>,
) -> anyhow::Result<Option<Credentials>> {
    if let Some(signed) = sign.credentials()? {
        return Ok(Some(signed));
    }
    bearer
        .map(|token| Credentials::bearer(token.expose()).map_err(anyhow::Error::from))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let secret: SecretString = "tg_test_topsecretvalue".parse().unwrap();
        let args = SignArgs {
            key_id: Some("key_abc".into()),
            ..Default::default()
        };
        let shown = format!("{secret:?} {args:?}");
        assert!(!shown.contains("topsecret"), "{shown}");
    }
}
