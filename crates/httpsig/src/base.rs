//! Signature bases (RFC 9421 §2.5): one line per covered component, `"name": value`, then the
//! `"@signature-params"` line, lines joined by `\n`, no trailing newline.
//!
//! Derived components supported: `@method`, `@authority`, `@path`, `@query`, `@target-uri`
//! (with the scheme the request arrived on), `@scheme`, `@request-target`. Component
//! parameters (`;sf`, `;key`, `;bs`, `;req`, `;tr`, `;name`) are not supported: a signature
//! using one is rejected rather than verified over a different base.

use super::SigError;
use super::sfv::{self, Bare};

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
        let mut out = String::new();
        self.write_field(name, &mut out).then_some(out)
    }

    fn path_or_root(&self) -> &str {
        if self.path.is_empty() { "/" } else { self.path }
    }

    /// Appends `@authority` (RFC 9421 §2.2.3) to `out`: normalized as RFC 9110 §4.2.3 says,
    /// the host in lower case and the scheme's default port (`:80` for http, `:443` for
    /// https) omitted, so `Host: gw.example:80` and `Host: gw.example` have the same base.
    fn write_authority(&self, out: &mut String) {
        let start = out.len();
        push_lower(out, self.authority.trim());
        let default_port = if self.scheme.eq_ignore_ascii_case("http") {
            80
        } else if self.scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            return;
        };
        let cut = match out[start..].rsplit_once(':') {
            Some((host, port))
                if !host.is_empty()
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && port.parse::<u32>() == Ok(default_port) =>
            {
                start + host.len()
            }
            _ => return,
        };
        out.truncate(cut);
    }

    /// Appends the value of a covered field as [`field`](Self::field) gives it; `false` if
    /// the message has no such field.
    fn write_field(&self, name: &str, out: &mut String) -> bool {
        let mut found = false;
        for (n, v) in self.headers {
            if n.eq_ignore_ascii_case(name) {
                if found {
                    out.push_str(", ");
                }
                out.push_str(v.trim_matches([' ', '\t']));
                found = true;
            }
        }
        found
    }

    /// Appends the value of one component to `out`, or says why it has none. (Written in
    /// place: the base is built once per signed request, and each allocation shows.)
    fn write_component(&self, name: &str, out: &mut String) -> Result<(), SigError> {
        match name {
            "@method" => out.push_str(self.method),
            "@authority" => self.write_authority(out),
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
                self.write_authority(out);
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
            n => {
                if !self.write_field(n, out) {
                    return Err(SigError::Invalid(format!(
                        "the signature covers {n}, which the request lacks"
                    )));
                }
            }
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
pub fn signature_params<C: AsRef<str>>(components: &[C], params: &[(&str, Bare<'_>)]) -> String {
    let mut out = String::with_capacity(128);
    write_signature_params(&mut out, components, params);
    out
}

fn write_signature_params<C: AsRef<str>>(
    out: &mut String,
    components: &[C],
    params: &[(&str, Bare<'_>)],
) {
    out.push('(');
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        sfv::write_string(out, c.as_ref());
    }
    out.push(')');
    sfv::write_params(out, params);
}

/// Builds the signature base of `req` for the covered `components` and `params`.
pub fn signature_base<C: AsRef<str>>(
    req: &RequestParts<'_>,
    components: &[C],
    params: &[(&str, Bare<'_>)],
) -> Result<String, SigError> {
    let mut out = String::with_capacity(384);
    for c in components {
        let c = c.as_ref();
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
        let base =
            signature_base(&no_query, &["@method"], &[("created", Bare::Integer(5))]).unwrap();
        assert_eq!(
            base,
            "\"@method\": GET\n\"@signature-params\": (\"@method\");created=5"
        );
    }
}
