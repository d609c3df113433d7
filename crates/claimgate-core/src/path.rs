//! The request path, normalised once, and values made safe for a backend URL.
//!
//! A gateway that matches one path and forwards another is an authorization bypass:
//! `/public/../admin/x` matches an anonymous `/public/{p*}` route, and every backend that
//! resolves dot segments (file servers, nginx, most frameworks) then serves `/admin/x`. So the
//! path is normalised before routing, and that one form is used for matching, for
//! `${request.path[...]}`, for the backend request and for the logs (as Envoy's
//! `normalize_path` + `merge_slashes` and nginx do). The rules (SPEC "Request paths, headers and
//! connections (hardening)"):
//!
//! - percent-encoded unreserved characters (`%2e`, `%41`, `%7E`) are decoded; other escapes are
//!   kept with upper-case hex digits; bytes that may not stand raw in a path (space, `"`,
//!   non-ASCII, ...) are escaped, so there is one spelling of each path;
//! - dot segments are removed (RFC 3986 §5.2.4) and repeated slashes merged (a trailing slash
//!   is kept: `/a/` and `/a` are different paths);
//! - refused outright, because backends disagree on what they mean: a `..` that would climb
//!   above `/`, an encoded slash or backslash (`%2F`, `%5C`: many backends decode them before
//!   resolving the path), a raw backslash (Windows and IIS treat it as `/`), a `.`/`..` segment
//!   followed by `;` (Tomcat's `..;/`), an encoded or raw control character, and invalid
//!   percent-encoding.
//!
//! Values put into a backend URL are escaped by [`push_path_value`] and [`push_query_value`]
//! so that no value can change the backend path's shape or add a query.

use claimgate_config::{ContextTable, ContextVariable, Template, TemplatePart};
use std::borrow::Cow;
use std::fmt;

/// Why a request path (or a value bound for a backend path) is refused with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRejection {
    /// The path does not start with `/` (`*`, or a relative path).
    NotAbsolute,
    /// A `%` not followed by two hexadecimal digits.
    InvalidPercentEncoding,
    /// `%2F`: a slash that a backend may decode into a new segment.
    EncodedSlash,
    /// `\` or `%5C`: a separator on Windows backends.
    Backslash,
    /// A C0 control character or DEL, raw or encoded.
    ControlCharacter,
    /// `.;` or `..;` at the start of a segment: Tomcat resolves `..;/` as `../`.
    DotSemicolon,
    /// A `..` with no segment left to remove.
    AboveRoot,
    /// A value bound for a backend path segment holds `/` or `\`, or is `.` or `..`.
    ValueChangesPath,
    /// A value bound for a backend host is not one DNS label.
    ValueNotHostLabel,
}

impl PathRejection {
    /// The reason in words, for logs and `check`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotAbsolute => "the path does not start with '/'",
            Self::InvalidPercentEncoding => {
                "the path has a '%' not followed by two hexadecimal digits"
            }
            Self::EncodedSlash => "the path has an encoded slash (%2F)",
            Self::Backslash => "the path has a backslash (raw or %5C)",
            Self::ControlCharacter => "the path has a control character (raw or encoded)",
            Self::DotSemicolon => "the path has a '.' or '..' segment followed by ';'",
            Self::AboveRoot => "the path has a '..' segment that climbs above '/'",
            Self::ValueChangesPath => {
                "a value put into the backend path holds '/' or '\\', or is '.' or '..'"
            }
            Self::ValueNotHostLabel => {
                "a value put into the backend host is not one DNS label ([A-Za-z0-9-], 1 to 63 characters)"
            }
        }
    }
}

impl fmt::Display for PathRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for PathRejection {}

/// RFC 3986 `unreserved`: never needs escaping, so an escaped one is decoded.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Bytes that stand raw in a normalised path segment: `pchar` without `%` (RFC 3986 §3.3).
fn is_segment_byte(byte: u8) -> bool {
    is_unreserved(byte)
        || matches!(
            byte,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

fn is_control(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(byte: u8, out: &mut String) {
    out.push('%');
    out.push(HEX[usize::from(byte >> 4)] as char);
    out.push(HEX[usize::from(byte & 0xf)] as char);
}

/// Normalises a request path (without its query). Borrowed when the path is already normal,
/// which is the common case: no allocation then.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathRejection> {
    if !raw.starts_with('/') {
        return Err(PathRejection::NotAbsolute);
    }
    if is_normal(raw) {
        // The fast check must never disagree with the rules (the fuzz target runs with debug
        // assertions on).
        debug_assert_eq!(normalize_slow(raw).as_deref(), Ok(raw));
        return Ok(Cow::Borrowed(raw));
    }
    normalize_slow(raw)
}

fn normalize_slow(raw: &str) -> Result<Cow<'_, str>, PathRejection> {
    let mut segments: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    let mut pieces = raw[1..].split('/').peekable();
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        let segment = normalize_segment(piece)?;
        match segment.as_str() {
            "" => trailing_slash = last,
            "." => trailing_slash = last,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathRejection::AboveRoot);
                }
                trailing_slash = last;
            }
            s if s.starts_with(".;") || s.starts_with("..;") => {
                return Err(PathRejection::DotSemicolon)
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(raw.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if segments.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(if out == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(out)
    })
}

/// One segment with unreserved escapes decoded, other escapes upper-cased and bytes that may
/// not stand raw escaped.
fn normalize_segment(piece: &str) -> Result<String, PathRejection> {
    let bytes = piece.as_bytes();
    let mut out = String::with_capacity(piece.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'%' => {
                let decoded = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&h), Some(&l)) => match (hex_value(h), hex_value(l)) {
                        (Some(h), Some(l)) => (h << 4) | l,
                        _ => return Err(PathRejection::InvalidPercentEncoding),
                    },
                    _ => return Err(PathRejection::InvalidPercentEncoding),
                };
                match decoded {
                    b'/' => return Err(PathRejection::EncodedSlash),
                    b'\\' => return Err(PathRejection::Backslash),
                    b if is_control(b) => return Err(PathRejection::ControlCharacter),
                    b if is_unreserved(b) => out.push(b as char),
                    b => push_escaped(b, &mut out),
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(PathRejection::Backslash),
            b if is_control(b) => return Err(PathRejection::ControlCharacter),
            b if is_segment_byte(b) => out.push(b as char),
            b => push_escaped(b, &mut out),
        }
        i += 1;
    }
    Ok(out)
}

/// Whether `raw` (starting with `/`) is already in normal form, checked without allocating.
/// May say no for a normal path (the slow path then returns it borrowed all the same), never yes
/// for one that is not.
fn is_normal(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    // Per segment: its start, to spot empty, dot and dot-semicolon segments.
    let mut segment_start = 1;
    let mut i = 1;
    while i <= bytes.len() {
        let byte = bytes.get(i).copied();
        if byte.is_none() || byte == Some(b'/') {
            let segment = &bytes[segment_start..i];
            let last = byte.is_none();
            if (segment.is_empty() && !last)
                || segment == b"."
                || segment == b".."
                || segment.starts_with(b".;")
                || segment.starts_with(b"..;")
            {
                return false;
            }
            segment_start = i + 1;
            i += 1;
            continue;
        }
        match byte {
            Some(b'%') => {
                let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                    return false;
                };
                if !matches!(h, b'0'..=b'9' | b'A'..=b'F')
                    || !matches!(l, b'0'..=b'9' | b'A'..=b'F')
                {
                    return false;
                }
                let (Some(h), Some(l)) = (hex_value(h), hex_value(l)) else {
                    return false;
                };
                let decoded = (h << 4) | l;
                if is_unreserved(decoded) || is_control(decoded) || matches!(decoded, b'/' | b'\\')
                {
                    return false;
                }
                i += 3;
            }
            Some(b) if is_segment_byte(b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// Appends a value bound for a backend URL's path, escaped as path data: every byte but the
/// unreserved ones is percent-encoded (`/`, `?`, `#` and `%` included). Refused when the value
/// holds `/` or `\`, or is `.` or `..`: many backends decode `%2F` before they resolve a path.
pub fn push_path_value(value: &[u8], out: &mut String) -> Result<(), PathRejection> {
    if value == b"." || value == b".." || value.iter().any(|b| matches!(b, b'/' | b'\\')) {
        return Err(PathRejection::ValueChangesPath);
    }
    push_query_value(value, out);
    Ok(())
}

/// Appends a value bound for a backend URL's query, with every byte but the unreserved ones
/// percent-encoded, so it cannot end its parameter or add another.
pub fn push_query_value(value: &[u8], out: &mut String) {
    for &byte in value {
        if is_unreserved(byte) {
            out.push(byte as char);
        } else {
            push_escaped(byte, out);
        }
    }
}

/// Appends a value bound for a backend URL's host: one DNS label, else refused (a value must not
/// turn `${x}.backend.internal` into another host, an IP literal or a port).
pub fn push_host_value(value: &[u8], out: &mut String) -> Result<(), PathRejection> {
    let label = !value.is_empty()
        && value.len() <= 63
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    if !label {
        return Err(PathRejection::ValueNotHostLabel);
    }
    out.extend(value.iter().map(|&b| b as char));
    Ok(())
}

/// Whether the query parameter name `raw`, as sent, is `wanted` once percent-decoded (ASCII
/// case-insensitively), without allocating: how the gateway finds credential parameters to
/// redact and the parameters a `queryParameterValidations` policy requires (`p%61ge` is the
/// `page` a backend reads). An invalid escape is compared as written.
pub fn query_name_is(raw: &str, wanted: &str) -> bool {
    let (raw, wanted) = (raw.as_bytes(), wanted.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < raw.len() {
        let byte = match raw[i] {
            b'%' if i + 2 < raw.len() => match (hex_value(raw[i + 1]), hex_value(raw[i + 2])) {
                (Some(high), Some(low)) => {
                    i += 2;
                    high << 4 | low
                }
                _ => b'%',
            },
            other => other,
        };
        i += 1;
        if wanted.get(j).is_none_or(|w| !w.eq_ignore_ascii_case(&byte)) {
            return false;
        }
        j += 1;
    }
    j == wanted.len()
}

/// Decodes percent-encoding (query values arrive encoded; `+` is left as it is). Invalid
/// escapes are kept as written.
pub fn percent_decode(value: &str) -> Cow<'_, [u8]> {
    let bytes = value.as_bytes();
    if !bytes.contains(&b'%') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// Substitutes every `${...}` in a backend URL template, escaping each value for the part of
/// the URL it lands in, so that no value changes the backend path's shape, adds a query or names
/// another host. `value` gives a variable's text as the request has it (query values still
/// percent-encoded, `{param}`/`{param*}` values in normal form). One function for the gateway,
/// which calls the result, and for `check`, which shows it:
/// - path: a `{param}`/`{param*}` value is already a normalised path (its `/` kept); any other
///   value is decoded if it came from the query, then percent-encoded whole, and refused when it
///   holds `/` or `\` or is `.` or `..` (backends that decode `%2F` would read a new segment);
/// - query: every value percent-encoded whole;
/// - host: one DNS label, and the result never a link-local address.
pub fn expand_backend_url(
    template: &Template,
    mut value: impl FnMut(&ContextVariable) -> String,
) -> Result<String, PathRejection> {
    let mut out = String::new();
    let mut templated_host = false;
    for part in template.parts() {
        let variable = match part {
            TemplatePart::Literal(text) => {
                out.push_str(text);
                continue;
            }
            TemplatePart::Variable(variable) => variable,
        };
        let text = value(variable);
        let bytes: Cow<'_, [u8]> = match variable.table {
            ContextTable::Query | ContextTable::Path => percent_decode(&text),
            _ => Cow::Borrowed(text.as_bytes()),
        };
        match url_part(&out) {
            // Normalised with the request path: valid path data as it stands.
            UrlPart::Path if variable.table == ContextTable::Path => out.push_str(&text),
            UrlPart::Path => push_path_value(&bytes, &mut out)?,
            UrlPart::Query => push_query_value(&bytes, &mut out),
            UrlPart::Authority => {
                templated_host = true;
                push_host_value(&bytes, &mut out)?
            }
        }
    }
    if templated_host && link_local_host(&out) {
        return Err(PathRejection::ValueNotHostLabel);
    }
    Ok(out)
}

/// The part of a URL that text appended after `so_far` lands in. Values appended before are
/// escaped, so they never add the `/`, `?` or `#` this reads (a `{param*}` value adds `/` only
/// in the path, where it changes nothing). Before the scheme's `://` counts as the host: the
/// strictest rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    Authority,
    Path,
    Query,
}

fn url_part(so_far: &str) -> UrlPart {
    if so_far.contains(['?', '#']) {
        return UrlPart::Query;
    }
    match so_far.find("://") {
        Some(i) if so_far[i + 3..].contains('/') => UrlPart::Path,
        _ => UrlPart::Authority,
    }
}

/// Whether a URL's host is a link-local address (169.254.0.0/16, fe80::/10: where cloud
/// metadata services answer).
fn link_local_host(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    // The same rule as claimgate-keys' `is_link_local` for outbound calls (this crate does no
    // I/O and does not depend on that one), IPv4 mapped into IPv6 included.
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_link_local(),
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        normalize(raw)
            .unwrap_or_else(|e| panic!("{raw}: {e}"))
            .into_owned()
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for raw in [
            "/",
            "/v1/orders",
            "/v1/orders/",
            "/a/b%20c",
            "/caf%C3%A9",
            "/a;b=c/d@e:f",
            "/.well-known/x",
            "/a/..b/c.",
            "/%252e%252e/x",
        ] {
            assert!(matches!(normalize(raw), Ok(Cow::Borrowed(_))), "{raw}");
        }
    }

    #[test]
    fn normalises_dot_segments_slashes_and_escapes() {
        let cases = [
            ("/public/../admin/secret.txt", "/admin/secret.txt"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("/public/%2E%2E/admin", "/admin"),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/.", "/"),
            ("//a///b", "/a/b"),
            ("/a//", "/a/"),
            ("/%41%7e%2D", "/A~-"),
            ("/a%3ab", "/a%3Ab"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/café", "/caf%C3%A9"),
            ("/a b", "/a%20b"),
            ("/a\"b", "/a%22b"),
        ];
        for (raw, want) in cases {
            assert_eq!(ok(raw), want, "{raw}");
        }
    }

    #[test]
    fn refuses_what_backends_read_differently() {
        let cases = [
            ("/..", PathRejection::AboveRoot),
            ("/a/../..", PathRejection::AboveRoot),
            ("/public/%2e%2e/%2e%2e/x", PathRejection::AboveRoot),
            ("/public/..%2fadmin", PathRejection::EncodedSlash),
            ("/public/..%2Fadmin", PathRejection::EncodedSlash),
            ("/public/..%5cadmin", PathRejection::Backslash),
            ("/public/..\\admin", PathRejection::Backslash),
            ("/public/..;/admin", PathRejection::DotSemicolon),
            ("/public/.;/admin", PathRejection::DotSemicolon),
            ("/x/..;b", PathRejection::DotSemicolon),
            ("/public/%2e%2e;/admin", PathRejection::DotSemicolon),
            ("/a%00b", PathRejection::ControlCharacter),
            ("/a%0Ab", PathRejection::ControlCharacter),
            ("/a%7fb", PathRejection::ControlCharacter),
            ("/a\tb", PathRejection::ControlCharacter),
            ("/a%", PathRejection::InvalidPercentEncoding),
            ("/a%4", PathRejection::InvalidPercentEncoding),
            ("/a%zz", PathRejection::InvalidPercentEncoding),
            ("*", PathRejection::NotAbsolute),
            ("", PathRejection::NotAbsolute),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn normal_form_is_a_fixed_point() {
        for raw in ["/a/../b//c/%2e/%41", "/x/%c3%a9/", "/a b/./c"] {
            let once = ok(raw);
            assert_eq!(ok(&once), once);
            assert!(matches!(normalize(&once), Ok(Cow::Borrowed(_))), "{once}");
        }
    }

    #[test]
    fn path_values_cannot_change_the_path() {
        let mut out = String::new();
        assert_eq!(
            push_path_value(b"../admin", &mut out),
            Err(PathRejection::ValueChangesPath)
        );
        assert_eq!(
            push_path_value(b"..", &mut out),
            Err(PathRejection::ValueChangesPath)
        );
        assert_eq!(
            push_path_value(b".", &mut out),
            Err(PathRejection::ValueChangesPath)
        );
        assert_eq!(
            push_path_value(b"a\\b", &mut out),
            Err(PathRejection::ValueChangesPath)
        );
        assert_eq!(
            push_path_value(b"a/b", &mut out),
            Err(PathRejection::ValueChangesPath)
        );
        push_path_value(b"a?c=d#e f%", &mut out).unwrap();
        assert_eq!(out, "a%3Fc%3Dd%23e%20f%25");
    }

    #[test]
    fn host_values_are_one_label() {
        let mut out = String::new();
        push_host_value(b"tenant-1", &mut out).unwrap();
        assert_eq!(out, "tenant-1");
        for bad in [&b""[..], b"a.b", b"a:80", b"a/b", b"a@b", &[b'a'; 64]] {
            assert_eq!(
                push_host_value(bad, &mut out),
                Err(PathRejection::ValueNotHostLabel)
            );
        }
    }

    #[test]
    fn link_local_hosts() {
        assert!(link_local_host("http://169.254.169.254/latest"));
        assert!(link_local_host("http://u@169.254.1.1:80/"));
        assert!(link_local_host("http://[fe80::1]:8080/x"));
        assert!(link_local_host("http://[::ffff:169.254.169.254]/latest"));
        assert!(!link_local_host("http://169.253.1.1/"));
        assert!(!link_local_host("http://tenant.svc/x"));
    }

    #[test]
    fn query_names_are_compared_decoded_and_case_insensitively() {
        for raw in [
            "access_token",
            "ACCESS_TOKEN",
            "access%5Ftoken",
            "%61ccess%5ftoken",
        ] {
            assert!(query_name_is(raw, "access_token"), "{raw}");
        }
        for raw in [
            "access_tokens",
            "access_toke",
            "",
            "access%5",
            "access%5Gtoken",
            "%",
        ] {
            assert!(!query_name_is(raw, "access_token"), "{raw}");
        }
        assert!(query_name_is("jw%74", "jwt"));
        assert!(!query_name_is("jwt", "jwt%"));
        assert!(query_name_is("p%61ge", "Page"));
    }

    #[test]
    fn decodes_query_values() {
        assert_eq!(&*percent_decode("..%2Fadmin"), b"../admin");
        assert_eq!(&*percent_decode("a%zz+b"), b"a%zz+b");
        assert!(matches!(percent_decode("plain"), Cow::Borrowed(_)));
    }
}
