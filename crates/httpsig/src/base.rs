//! Signature bases (RFC 9421 §2.5): one line per covered component, `"name": value`, then the
//! `"@signature-params"` line, lines joined by `\n`, no trailing newline.
//!
//! Derived components supported: `@method`, `@authority`, `@path`, `@query`, `@target-uri`
//! (with the scheme the request arrived on), `@scheme`, `@request-target`. Component
//! parameters (`;sf`, `;key`, `;bs`, `;req`, `;tr`, `;name`) are not supported: a signature
//! using one is rejected rather than verified over a different base.

use super::SigError;
use super::sfv::{self, Params};

/// What a signature base is built from: the request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// As sent, e.g. `POST`.
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// `Host` (or the `:authority`), as sent; normalised to lower case here.
    pub authority: &'a str,
    /// The absolute path, without the query.
    pub path: &'a str,
    /// The query without the `?`, if the target had one.
    pub query: Option<&'a str>,
    /// Header lines as (lower-case name, value), in order; repeated names allowed.
    pub headers: &'a [(&'a str, &'a str)],
}

impl RequestParts<'_> {
    /// The value of a covered field: every line of that name, trimmed, joined with `, `
    /// (RFC 9421 §2.1). `None` if the message has no such field.
    pub fn field(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for (n, v) in self.headers {
            if n.eq_ignore_ascii_case(name) {
                let v = v.trim_matches([' ', '\t']);
                match &mut out {
                    Some(s) => {
                        s.push_str(", ");
                        s.push_str(v);
                    }
                    None => out = Some(v.to_string()),
                }
            }
        }
        out
    }

    fn path_or_root(&self) -> &str {
        if self.path.is_empty() { "/" } else { self.path }
    }

    fn authority_lower(&self) -> String {
        self.authority.trim().to_ascii_lowercase()
    }

    /// `@authority` (RFC 9421 §2.2.3): normalized as RFC 9110 §4.2.3 says, the host in lower
    /// case and the scheme's default port (`:80` for http, `:443` for https) omitted, so
    /// `Host: gw.example:80` and `Host: gw.example` have the same base.
    fn authority_normalized(&self) -> String {
        let authority = self.authority_lower();
        let default_port = if self.scheme.eq_ignore_ascii_case("http") {
            80
        } else if self.scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            return authority;
        };
        match authority.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty()
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && port.parse::<u32>() == Ok(default_port) =>
            {
                host.to_string()
            }
            _ => authority,
        }
    }

    /// Appends the value of one component to `out`, or says why it has none. (Written in
    /// place: the base is built once per signed request, and each allocation shows.)
    fn write_component(&self, name: &str, out: &mut String) -> Result<(), SigError> {
        match name {
            "@method" => out.push_str(self.method),
            "@authority" => out.push_str(&self.authority_normalized()),
            "@scheme" => push_lower(out, self.scheme),
            "@path" => out.push_str(self.path_or_root()),
            "@query" => {
                out.push('?');
                out.push_str(self.query.unwrap_or(""));
            }
            "@request-target" => {
                out.push_str(self.path_or_root());
                if let Some(q) = self.query {
                    out.push('?');
                    out.push_str(q);
                }
            }
            "@target-uri" => {
                // The normalized target URI (RFC 9110 §4.2.3): like `@authority`, without
                // the scheme's default port.
                push_lower(out, self.scheme);
                out.push_str("://");
                out.push_str(&self.authority_normalized());
                out.push_str(self.path_or_root());
                if let Some(q) = self.query {
                    out.push('?');
                    out.push_str(q);
                }
            }
            n if n.starts_with('@') => {
                return Err(SigError::Invalid(format!(
                    "the component {n} is not supported"
                )));
            }
            n => out.push_str(&self.field(n).ok_or_else(|| {
                SigError::Invalid(format!("the signature covers {n}, which the request lacks"))
            })?),
        }
        Ok(())
    }
}

#[cfg(test)]
impl RequestParts<'_> {
    fn component(&self, name: &str) -> Result<String, SigError> {
        let mut out = String::new();
        self.write_component(name, &mut out).map(|()| out)
    }
}

fn push_lower(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| c.to_ascii_lowercase()));
}

/// The serialization of the signature parameters: the `@signature-params` value.
pub fn signature_params(components: &[String], params: &Params) -> String {
    let mut out = String::with_capacity(128);
    write_signature_params(&mut out, components, params);
    out
}

fn write_signature_params(out: &mut String, components: &[String], params: &Params) {
    out.push('(');
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        sfv::write_string(out, c);
    }
    out.push(')');
    sfv::write_params(out, params);
}

/// Builds the signature base of `req` for the covered `components` and `params`.
pub fn signature_base(
    req: &RequestParts<'_>,
    components: &[String],
    params: &Params,
) -> Result<String, SigError> {
    let mut out = String::with_capacity(384);
    for c in components {
        sfv::write_string(&mut out, c);
        out.push_str(": ");
        let start = out.len();
        req.write_component(c, &mut out)?;
        if out[start..].contains(['\n', '\r']) {
            return Err(SigError::Invalid(format!(
                "the value of {c} has a line break"
            )));
        }
        out.push('\n');
    }
    out.push_str("\"@signature-params\": ");
    write_signature_params(&mut out, components, params);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfv::Bare;

    /// Regression: `Host: gw.example:80` was signed by clients (RFC 9421 §2.2.3, e.g. Python's
    /// `http-message-signatures`) as `gw.example` but verified here as `gw.example:80`.
    #[test]
    fn authority_omits_the_default_port() {
        for (scheme, host, expected) in [
            ("http", "GW.example:80", "gw.example"),
            ("http", "gw.example:080", "gw.example"),
            ("https", "gw.example:443", "gw.example"),
            ("http", "gw.example:443", "gw.example:443"),
            ("https", "gw.example:80", "gw.example:80"),
            ("http", "gw.example:8080", "gw.example:8080"),
            ("http", "gw.example", "gw.example"),
            ("http", "[::1]:80", "[::1]"),
            ("http", "[::1]", "[::1]"),
            ("http", "gw.example:", "gw.example:"),
        ] {
            let req = RequestParts {
                method: "GET",
                scheme,
                authority: host,
                path: "/",
                query: None,
                headers: &[],
            };
            assert_eq!(
                req.component("@authority").unwrap(),
                expected,
                "{scheme} {host}"
            );
            // The target URI is normalized alike.
            assert_eq!(
                req.component("@target-uri").unwrap(),
                format!("{scheme}://{expected}/"),
                "{scheme} {host}"
            );
        }
    }

    #[test]
    fn derived_components() {
        let headers = [("x-a", " one "), ("x-a", "two"), ("host", "Example.COM")];
        let req = RequestParts {
            method: "GET",
            scheme: "https",
            authority: "Example.COM",
            path: "",
            query: Some("a=1&b=2"),
            headers: &headers,
        };
        let c = |n: &str| req.component(n).unwrap();
        assert_eq!(c("@authority"), "example.com");
        assert_eq!(c("@path"), "/");
        assert_eq!(c("@query"), "?a=1&b=2");
        assert_eq!(c("@request-target"), "/?a=1&b=2");
        assert_eq!(c("@target-uri"), "https://example.com/?a=1&b=2");
        assert_eq!(c("x-a"), "one, two");
        assert!(req.component("x-missing").is_err());
        assert!(req.component("@query-param").is_err());
        let no_query = RequestParts { query: None, ..req };
        assert_eq!(no_query.component("@query").unwrap(), "?");
        let base = signature_base(
            &no_query,
            &["@method".into()],
            &vec![("created".into(), Bare::Integer(5))],
        )
        .unwrap();
        assert_eq!(
            base,
            "\"@method\": GET\n\"@signature-params\": (\"@method\");created=5"
        );
    }
}
