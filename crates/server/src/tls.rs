//! TLS termination (`[server.tls]`): rustls with the ring provider only (the workspace's one
//! provider), TLS 1.3 and 1.2 with rustls' default suites (AEAD only, forward secret), ALPN
//! `http/1.1`. The certificate and key are read at start and again on SIGHUP or when either
//! file changes; a handshake uses the configuration current when it starts, so live
//! connections are never dropped by a reload, and a reload that fails keeps the old one.

use crate::config::TlsConfig;
use parking_lot::{Mutex, RwLock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// A certificate or key that cannot be used. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls: cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("server.tls: {path} holds no certificate (PEM `CERTIFICATE`)")]
    NoCertificate { path: String },
    #[error("server.tls: the certificate and key cannot be used together: {0}")]
    Rustls(String),
}

/// The current server configuration, and what it was built from.
#[derive(Debug)]
pub struct TlsState {
    files: TlsConfig,
    current: RwLock<Arc<rustls::ServerConfig>>,
    stamps: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
    reloads: AtomicU64,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn build(files: &TlsConfig) -> Result<rustls::ServerConfig, TlsError> {
    let read_err = |path: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(&files.cert_file)
        .map_err(|e| read_err(&files.cert_file, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(&files.cert_file, &e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert_file.display().to_string(),
        });
    }
    // The key's parse error names the file and the problem, never the key's bytes.
    let key =
        PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| read_err(&files.key_file, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl TlsState {
    /// Reads and checks the files (a gateway with a bad certificate does not start).
    pub fn load(files: &TlsConfig) -> Result<Self, TlsError> {
        let config = build(files)?;
        Ok(Self {
            stamps: Mutex::new((modified(&files.cert_file), modified(&files.key_file))),
            files: files.clone(),
            current: RwLock::new(Arc::new(config)),
            reloads: AtomicU64::new(0),
        })
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().clone())
    }

    /// Successful reloads since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Reads the files again now; on failure the current configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = (
            modified(&self.files.cert_file),
            modified(&self.files.key_file),
        );
        let config = build(&self.files)?;
        *self.current.write() = Arc::new(config);
        *self.stamps.lock() = stamps;
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn changed(&self) -> bool {
        let now = (
            modified(&self.files.cert_file),
            modified(&self.files.key_file),
        );
        *self.stamps.lock() != now
    }

    /// Reloads on SIGHUP and when either file's modification time changes (checked every
    /// `poll`), until `shutdown`.
    pub async fn watch(self: Arc<Self>, poll: Duration, shutdown: CancellationToken) {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hup = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup = std::future::pending::<Option<()>>();
            let why = tokio::select! {
                () = shutdown.cancelled() => return,
                _ = hup => "SIGHUP",
                _ = tick.tick() => {
                    if !self.changed() {
                        continue;
                    }
                    "the certificate or key file changed"
                }
            };
            match self.reload() {
                Ok(()) => tracing::info!(reason = why, "TLS certificate reloaded"),
                Err(error) => {
                    // Keep serving with the old one; try again at the next change.
                    *self.stamps.lock() = (
                        modified(&self.files.cert_file),
                        modified(&self.files.key_file),
                    );
                    tracing::error!(reason = why, error = %error, "TLS reload failed; the previous certificate stays");
                }
            }
        }
    }
}
