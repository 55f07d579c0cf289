//! TLS termination: https:// and wss:// on the listen address with a certificate made here
//! (rcgen), verified by real clients; a changed certificate is picked up without dropping a
//! live connection.

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

struct Cert {
    pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn self_signed() -> Cert {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    Cert {
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

fn client_config(trusted: &Cert) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

async fn https_status(
    addr: std::net::SocketAddr,
    trusted: &Cert,
    path: &str,
) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*client_config(trusted)).clone())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    client
        .get(format!("https://localhost:{}{path}", addr.port()))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

async fn wss(
    addr: std::net::SocketAddr,
    trusted: &Cert,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let url = format!("wss://localhost:{}/v1/ws", addr.port());
    tokio_tungstenite::client_async_tls_with_config(
        url,
        tcp,
        None,
        Some(tokio_tungstenite::Connector::Rustls(client_config(trusted))),
    )
    .await
    .map(|(ws, _)| ws)
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn https_and_wss_with_a_verified_certificate_that_reloads_without_dropping_sessions() {
    let dir = temp_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let first = self_signed();
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, &first.pem).unwrap();
    std::fs::write(&key_file, &first.key_pem).unwrap();
    let mut config = config(5.0);
    config.server.tls = Some(server::config::TlsConfig {
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
    });
    let gateway = server::Gateway::start(config)
        .await
        .expect("gateway starts");
    let addr = gateway.local_addr();
    assert_eq!(gateway.state().auth().signature_scheme, "https");
    let mut ready = false;
    for _ in 0..200 {
        if https_status(addr, &first, "/readyz").await == Ok(200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "never ready over https");
    assert_eq!(https_status(addr, &first, "/healthz").await, Ok(200));
    // A client that does not trust the certificate refuses the connection.
    let stranger = self_signed();
    assert!(https_status(addr, &stranger, "/healthz").await.is_err());
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::get(format!("http://{addr}/healthz")).await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // A live wss session.
    let mut ws = wss(addr, &first)
        .await
        .expect("wss with the first certificate");
    ws.send(Message::text(
        r#"{"op":"subscribe","id":1,"channels":["trades:sim:BTC-USDT"]}"#,
    ))
    .await
    .unwrap();
    let ack = ws.next().await.unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("subscribed"), "{ack:?}");

    // A new certificate in place: picked up (file change), the live session keeps going.
    let second = self_signed();
    std::fs::write(&cert_file, &second.pem).unwrap();
    std::fs::write(&key_file, &second.key_pem).unwrap();
    let mut switched = false;
    for _ in 0..50 {
        if https_status(addr, &second, "/healthz").await == Ok(200) {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(switched, "the new certificate was never served");
    assert!(
        https_status(addr, &first, "/healthz").await.is_err(),
        "old certificate still served"
    );
    ws.send(Message::text(r#"{"op":"ping","id":"still-here"}"#))
        .await
        .unwrap();
    let mut answered = false;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await
    {
        if message.to_text().is_ok_and(|t| t.contains("still-here")) {
            answered = true;
            break;
        }
    }
    assert!(answered, "the session opened before the reload was dropped");
    // A broken replacement keeps the working certificate.
    std::fs::write(&key_file, "not a key").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(https_status(addr, &second, "/healthz").await, Ok(200));
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_certificate_stops_the_gateway_at_start_with_a_clear_error() {
    let dir = temp_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let cert_file = dir.join("cert.pem");
    std::fs::write(&cert_file, "no certificate here").unwrap();
    let mut config = config(5.0);
    config.server.tls = Some(server::config::TlsConfig {
        cert_file: cert_file.clone(),
        key_file: dir.join("missing.pem"),
    });
    let Err(error) = server::Gateway::start(config).await else {
        panic!("a gateway with a bad certificate started")
    };
    let text = format!("{error:#}");
    assert!(
        text.contains("server.tls") && text.contains("cert.pem"),
        "{text}"
    );
}
