//! RFC 9421 Appendix B vectors (B.2.5 hmac-sha256, B.2.6 ed25519) and the scheme's policy.

use super::*;

const REQUEST: &str = include_str!("testdata/rfc9421_test_request.http");
const B25: &str = include_str!("testdata/rfc9421_b25.txt");
const B26: &str = include_str!("testdata/rfc9421_b26.txt");

fn field<'a>(file: &'a str, name: &str) -> &'a str {
    file.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("{name} missing from test data"))
}

/// Headers (lower-case names) and body of an HTTP/1.1 request text.
fn parse_request(text: &str) -> (String, String, Vec<(String, String)>, String) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap().split(' ');
    let method = start.next().unwrap().to_string();
    let target = start.next().unwrap().to_string();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    (method, target, headers, body.to_string())
}

fn with_request<T>(f: impl FnOnce(&RequestParts<'_>, &str) -> T) -> T {
    let (method, target, headers, body) = parse_request(REQUEST);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target.as_str(), None),
    };
    let req = RequestParts {
        method: &method,
        scheme: "https",
        authority: "example.com",
        path,
        query,
        headers: &headers,
    };
    f(&req, &body)
}

fn b64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).unwrap()
}

#[test]
fn rfc9421_b25_hmac_sha256_vector_verifies() {
    with_request(|req, _| {
        let signed = Signed::parse(field(B25, "signature-input"), field(B25, "signature")).unwrap();
        assert_eq!(signed.label, "sig-b25");
        assert_eq!(signed.keyid(), Some("test-shared-secret"));
        let base = signed.base(req).unwrap();
        assert_eq!(
            base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@authority\": example.com\n\
             \"content-type\": application/json\n\"@signature-params\": (\"date\" \
             \"@authority\" \"content-type\");created=1618884473;keyid=\"test-shared-secret\""
        );
        let secret = b64(field(B25, "secret-base64"));
        assert!(verify_hmac_sha256(
            &secret,
            base.as_bytes(),
            &signed.signature
        ));
        assert_eq!(
            sign_hmac_sha256(&secret, base.as_bytes()),
            &signed.signature[..]
        );
        // One bit off in the secret, the base or the signature: rejected.
        let mut other = secret.clone();
        other[0] ^= 1;
        assert!(!verify_hmac_sha256(
            &other,
            base.as_bytes(),
            &signed.signature
        ));
        let changed = base.replace("example.com", "example.org");
        assert!(!verify_hmac_sha256(
            &secret,
            changed.as_bytes(),
            &signed.signature
        ));
        let mut sig = signed.signature.clone();
        sig[31] ^= 0x80;
        assert!(!verify_hmac_sha256(&secret, base.as_bytes(), &sig));
        assert!(!verify_hmac_sha256(&secret, base.as_bytes(), &sig[..16]));
    });
}

#[test]
fn rfc9421_b26_ed25519_vector_verifies() {
    with_request(|req, _| {
        let signed = Signed::parse(field(B26, "signature-input"), field(B26, "signature")).unwrap();
        let base = signed.base(req).unwrap();
        assert!(base.starts_with(
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n"
        ));
        assert!(base.contains("\n\"content-length\": 18\n"));
        let spki = b64(field(B26, "public-key-spki-base64"));
        let public = &spki[spki.len() - 32..];
        assert!(verify_ed25519(public, base.as_bytes(), &signed.signature));
        // Ed25519 is deterministic: the RFC's private key reproduces the RFC's signature.
        let pkcs8 = b64(field(B26, "private-key-pkcs8-base64"));
        let seed: [u8; 32] = pkcs8[pkcs8.len() - 32..].try_into().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        assert_eq!(key.verifying_key().as_bytes(), public);
        let sig = ed25519_dalek::Signer::sign(&key, base.as_bytes());
        assert_eq!(sig.to_bytes().as_slice(), signed.signature.as_slice());
        let changed = base.replace("POST", "PUT");
        assert!(!verify_ed25519(
            public,
            changed.as_bytes(),
            &signed.signature
        ));
        let mut bad = signed.signature.clone();
        bad[0] ^= 1;
        assert!(!verify_ed25519(public, base.as_bytes(), &bad));
        assert!(!verify_ed25519(
            &public[..31],
            base.as_bytes(),
            &signed.signature
        ));
    });
}

#[test]
fn policy_requires_params_and_components() {
    with_request(|req, body| {
        // The RFC vectors carry no nonce and do not cover @query or content-digest.
        let signed = Signed::parse(field(B26, "signature-input"), field(B26, "signature")).unwrap();
        let err = signed.check_policy(req, !body.is_empty()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::SignatureIncomplete);
        let sig = "s=:AAAA:";
        let full = r#"s=("@method" "@path" "@query" "@authority" "content-digest");created=1;keyid="k";nonce="n""#;
        let signed = Signed::parse(full, sig).unwrap();
        signed.check_policy(req, true).unwrap();
        for (input, has_body) in [
            (
                r#"s=("@method" "@path" "@authority" "content-digest");created=1;keyid="k";nonce="n""#,
                true,
            ),
            (
                r#"s=("@method" "@path" "@query" "@authority");created=1;keyid="k";nonce="n""#,
                true,
            ),
            (
                r#"s=("@path" "@query" "@authority");created=1;keyid="k";nonce="n""#,
                false,
            ),
            (
                r#"s=("@method" "@path" "@query" "@authority");keyid="k";nonce="n""#,
                false,
            ),
            (
                r#"s=("@method" "@path" "@query" "@authority");created=1;keyid="k""#,
                false,
            ),
        ] {
            let signed = Signed::parse(input, sig).unwrap();
            let err = signed.check_policy(req, has_body).unwrap_err();
            assert_eq!(err.code(), ErrorCode::SignatureIncomplete, "{input}");
        }
        let target = r#"s=("@method" "@target-uri");created=1;keyid="k";nonce="n""#;
        Signed::parse(target, sig)
            .unwrap()
            .check_policy(req, false)
            .unwrap();
    });
}

#[test]
fn parse_rejections() {
    let sig = "s=:AAAA:";
    for (input, signature) in [
        (r#"s=("@method" "@method");created=1"#, sig),
        (r#"s=("@method";req);created=1"#, sig),
        (r#"s=("@signature-params");created=1"#, sig),
        (r#"s=("Date");created=1"#, sig),
        (r#"s=("@method");created="1""#, sig),
        (r#"s=("@method");created=-1"#, sig),
        (r#"s=("@method");foo=1"#, sig),
        (r#"s=("@method");created=1, t=("@path");created=1"#, sig),
        (r#"s=("@method");created=1"#, "t=:AAAA:"),
        (r#"s=("@method");created=1"#, r#"s=("x")"#),
        (r#"s=:AAAA:"#, sig),
    ] {
        let err = Signed::parse(input, signature).unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::SignatureInvalid,
            "{input} / {signature}"
        );
    }
}

#[test]
fn alg_must_match_the_key() {
    let s = Signed::parse(r#"s=("@method");alg="ed25519""#, "s=:AAAA:").unwrap();
    assert!(s.check_alg(Algorithm::Ed25519).is_ok());
    assert_eq!(
        s.check_alg(Algorithm::HmacSha256).unwrap_err().code(),
        ErrorCode::WrongKeyType
    );
    let none = Signed::parse(r#"s=("@method")"#, "s=:AAAA:").unwrap();
    assert!(none.check_alg(Algorithm::HmacSha256).is_ok());
}

#[test]
fn content_digest_rfc9530() {
    // RFC 9530 §2 example: {"hello": "world"} with sha-256.
    let body = br#"{"hello": "world"}"#;
    let digest = content_digest(body);
    assert_eq!(
        digest,
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    );
    check_content_digest(Some(&digest), body).unwrap();
    check_content_digest(Some(&format!("sha-512=:AAAA:, {digest}")), body).unwrap();
    for bad in [
        None,
        Some("sha-512=:AAAA:"),
        Some("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPF=:"),
        Some("sha-256=X48E"),
        Some(digest.as_str()),
    ] {
        let other_body = if bad == Some(digest.as_str()) {
            &b"{}"[..]
        } else {
            body
        };
        let err = check_content_digest(bad, other_body).unwrap_err();
        assert_eq!(err.code(), ErrorCode::DigestMismatch);
    }
}

/// Guards the structured-field error kept as the source (it used to be flattened to text):
/// same message and code as before, one line per header.
#[test]
fn malformed_headers_keep_the_parse_error_as_source() {
    use std::error::Error as _;
    let good_input = r#"sig1=("@method");created=1;keyid="k";nonce="n""#;
    for (input, signature, header, code) in [
        (
            "sig1",
            ":AA==:",
            "Signature-Input",
            ErrorCode::SignatureInvalid,
        ),
        (
            good_input,
            "sig1=",
            "Signature",
            ErrorCode::SignatureInvalid,
        ),
    ] {
        let error = Signed::parse(input, signature).unwrap_err();
        assert_eq!(error.code(), code, "{error}");
        assert!(
            error.to_string().starts_with(&format!("{header}: ")),
            "{error}"
        );
        let source = error.source().expect("the parse error is the source");
        assert_eq!(error.to_string(), format!("{header}: {source}"));
    }
    let error = check_content_digest(Some("sha-256"), b"{}").unwrap_err();
    assert_eq!(error.code(), ErrorCode::DigestMismatch);
    assert!(error.source().is_some(), "{error}");
    assert!(error.to_string().starts_with("Content-Digest: "), "{error}");
}
