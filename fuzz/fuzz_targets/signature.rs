//! The RFC 9421 parsers: structured-field dictionaries (RFC 8941), `Signature-Input` /
//! `Signature` pairs, the signing policy and the signature base.
//!
//! Input layout: fields separated by `\n`: signature-input, signature, method, authority,
//! path, query (empty = none), then header lines `name: value`.
//!
//! Oracle: no panic; a base is only built for a parsed signature, it ends with the
//! `"@signature-params"` line, and building it twice gives the same bytes.
#![no_main]

use httpsig::{RequestParts, Signed, sfv};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut fields = text.split('\n');
    let input = fields.next().unwrap_or("");
    let signature = fields.next().unwrap_or("");
    let _ = sfv::dictionary(input);
    let method = fields.next().unwrap_or("GET");
    let authority = fields.next().unwrap_or("gw.example");
    let path = fields.next().unwrap_or("/");
    let query = fields.next().filter(|q| !q.is_empty());
    let headers: Vec<(&str, &str)> = fields
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect();
    let Ok(signed) = Signed::parse(input, signature) else {
        return;
    };
    let req = RequestParts {
        method,
        scheme: "https",
        authority,
        path,
        query,
        headers: &headers,
    };
    let _ = signed.check_policy(&req, !headers.is_empty());
    let _ = signed.keyid();
    let _ = signed.created();
    if let Ok(base) = signed.base(&req) {
        let last = base.rsplit('\n').next().unwrap_or("");
        assert!(
            last.starts_with("\"@signature-params\": "),
            "base: {base:?}"
        );
        assert_eq!(signed.base(&req).ok().as_deref(), Some(base.as_str()));
    }
});
