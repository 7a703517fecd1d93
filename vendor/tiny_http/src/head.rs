//! Patched: the request head (request line and header fields), checked
//! against RFC 9112 and parsed in one pass by `httparse`.
//!
//! Bytes enter as the slice a connection has buffered so far
//! ([`find_end`] says whether it holds a whole head yet, and refuses a
//! forbidden byte as soon as it arrives); a whole head leaves as a
//! [`Head`]: method, target in origin form, version, header fields and the
//! body's [`Framing`]. Anything outside the grammar is an error, never a
//! guess: a proxy in front must never see a different request boundary
//! than this server does.
//!
//! `httparse` is strict on most of the grammar by default (no folded lines,
//! no whitespace before a colon, no empty field name, single spaces in the
//! request line), but it takes a bare LF as a line end and skips bare-LF
//! empty lines before the request line, so line ends are checked here, byte
//! by byte, before it sees them.

use std::str::FromStr;

use ascii::AsciiString;

use crate::common::{HTTPVersion, Header, HeaderField, Method};

/// The largest head accepted, in bytes: the request line and every header
/// line together, with their line ends. Any one line may use all of it.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// The most header fields accepted in one head.
pub(crate) const MAX_HEADERS: usize = 100;

/// Where a request's body ends (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head that passed every check.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Method,
    /// The target in origin form (`/path?query`): an absolute-form target
    /// (`http://host/path`) is reduced to its path and query.
    pub(crate) target: String,
    pub(crate) version: HTTPVersion,
    pub(crate) headers: Vec<Header>,
    pub(crate) framing: Framing,
}

/// Why a head was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Outside the grammar (400); says what is wrong.
    Malformed(&'static str),
    /// The body's length cannot be trusted (400); says why.
    Framing(&'static str),
    /// An HTTP/1.1 request without exactly one `Host` (400).
    Host(&'static str),
    /// A request line longer than [`MAX_REQUEST_LINE`] (414).
    TargetTooLong,
    /// More than [`MAX_HEAD`] bytes, or more than [`MAX_HEADERS`] fields
    /// (431).
    TooLarge,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1 (505).
    UnsupportedVersion,
    /// An HTTP/0.9 request line (`GET /`, no version): it gets no reply,
    /// since HTTP/0.9 has no status line to send one in.
    HttpZeroNine,
}

impl HeadError {
    /// The status of the reply, or `None` for no reply at all.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            HeadError::Malformed(_) | HeadError::Framing(_) | HeadError::Host(_) => Some(400),
            HeadError::TargetTooLong => Some(414),
            HeadError::TooLarge => Some(431),
            HeadError::UnsupportedVersion => Some(505),
            HeadError::HttpZeroNine => None,
        }
    }

    /// What is wrong, for the reply's body.
    pub(crate) fn message(&self) -> &'static str {
        match self {
            HeadError::Malformed(why) | HeadError::Framing(why) | HeadError::Host(why) => why,
            HeadError::TargetTooLong => "request line longer than 8192 bytes",
            HeadError::TooLarge => {
                "request headers too large: at most 16384 bytes and 100 fields in all"
            }
            HeadError::UnsupportedVersion => "only HTTP/1.0 and HTTP/1.1 are supported",
            HeadError::HttpZeroNine => "HTTP/0.9 is not supported",
        }
    }
}

/// How many bytes at the start of `buf` are empty lines (CRLF) before a
/// request line, which RFC 9112 section 2.2 lets a server skip. A bare LF
/// there is refused like anywhere else in a head.
pub(crate) fn leading_empty_lines(buf: &[u8]) -> Result<usize, HeadError> {
    let mut at = 0;
    loop {
        match buf.get(at..at + 2) {
            Some(b"\r\n") => at += 2,
            _ => match buf.get(at) {
                Some(b'\n') => {
                    return Err(HeadError::Malformed(
                        "malformed request line: an LF not preceded by CR",
                    ))
                }
                Some(b'\r') if buf.len() > at + 1 => {
                    return Err(HeadError::Malformed(
                        "malformed request line: a CR not followed by LF",
                    ))
                }
                _ => return Ok(at),
            },
        }
    }
}

/// The longest request line accepted, in bytes, without its CRLF.
pub(crate) const MAX_REQUEST_LINE: usize = 8192;

/// How far [`find_end`] has looked into a head.
#[derive(Default)]
pub(crate) struct Scan {
    /// Bytes looked at.
    scanned: usize,
    /// Where the request line's CRLF starts, once seen.
    request_line: Option<usize>,
}

impl Scan {
    /// Whether the request line has ended.
    pub(crate) fn past_request_line(&self) -> bool {
        self.request_line.is_some()
    }
}

/// What a forbidden byte is refused with, in the request line or after.
fn forbidden(scan: &Scan, in_request_line: &'static str, in_field: &'static str) -> HeadError {
    HeadError::Malformed(if scan.request_line.is_some() {
        in_field
    } else {
        in_request_line
    })
}

/// Scans `buf` (a head's bytes so far, without leading empty lines) from
/// where `scan` left off. `Ok(Some(n))`: the head is the first `n` bytes,
/// its empty line included. `Ok(None)`: not complete yet; call again with
/// the same `scan` once more bytes are in (each byte is looked at once).
///
/// Refuses at once, without waiting for the rest of the head: a NUL, a
/// bare LF, a CR not followed by LF, a request line longer than
/// [`MAX_REQUEST_LINE`], and an HTTP/0.9 request line.
pub(crate) fn find_end(buf: &[u8], scan: &mut Scan) -> Result<Option<usize>, HeadError> {
    let mut at = scan.scanned;
    while at < buf.len() {
        match buf[at] {
            0 => {
                return Err(forbidden(
                    scan,
                    "malformed request line: a NUL byte",
                    "malformed header line: a NUL byte",
                ))
            }
            b'\r' => match buf.get(at + 1) {
                None => break,
                Some(b'\n') => {}
                Some(_) => {
                    return Err(forbidden(
                        scan,
                        "malformed request line: a CR not followed by LF",
                        "malformed header line: a CR not followed by LF",
                    ))
                }
            },
            b'\n' => {
                if at == 0 || buf[at - 1] != b'\r' {
                    return Err(forbidden(
                        scan,
                        "malformed request line: an LF not preceded by CR",
                        "malformed header line: an LF not preceded by CR",
                    ));
                }
                if scan.request_line.is_none() {
                    scan.request_line = Some(at - 1);
                    if is_http_zero_nine(&buf[..at - 1]) {
                        return Err(HeadError::HttpZeroNine);
                    }
                }
                if at >= 3 && &buf[at - 3..=at] == b"\r\n\r\n" {
                    scan.scanned = at + 1;
                    return Ok(Some(at + 1));
                }
            }
            _ => {}
        }
        if scan.request_line.is_none() && at >= MAX_REQUEST_LINE + 1 {
            return Err(HeadError::TargetTooLong);
        }
        at += 1;
    }
    scan.scanned = at;
    Ok(None)
}

/// `METHOD SP TARGET` with no version: an HTTP/0.9 simple request.
fn is_http_zero_nine(line: &[u8]) -> bool {
    let mut parts = line.split(|&b| b == b' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), None) => {
            !method.is_empty() && !target.is_empty() && method.iter().all(|b| is_tchar(*b))
        }
        _ => false,
    }
}

/// A `tchar` of RFC 9110 section 5.6.2: the bytes of a token.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a whole head (as delimited by [`find_end`]) and checks its
/// fields.
pub(crate) fn parse(head: &[u8]) -> Result<Head, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(HeadError::Malformed("malformed head")),
        Err(e) => return Err(refusal(e, head)),
    }
    let method = request
        .method
        .and_then(|m| Method::from_str(m).ok())
        .ok_or(HeadError::Malformed("malformed request line: bad method"))?;
    let version = match request.version {
        Some(0) => HTTPVersion(1, 0),
        Some(1) => HTTPVersion(1, 1),
        _ => return Err(HeadError::UnsupportedVersion),
    };
    let target = request
        .path
        .filter(|path| path.is_ascii())
        .map(origin_form)
        .ok_or(HeadError::Malformed(
            "malformed request line: a target that is not ASCII",
        ))?;
    let mut headers = Vec::with_capacity(request.headers.len());
    for field in request.headers.iter() {
        let name = HeaderField::from_bytes(field.name.as_bytes())
            .map_err(|_| HeadError::Malformed("malformed header line: a bad name"))?;
        let value = AsciiString::from_ascii(trim_ows(field.value)).map_err(|_| {
            HeadError::Malformed("malformed header line: a value that is not ASCII")
        })?;
        headers.push(Header { field: name, value });
    }
    if version == HTTPVersion(1, 1) {
        match headers.iter().filter(|h| h.field.equiv("Host")).count() {
            1 => {}
            0 => return Err(HeadError::Host("an HTTP/1.1 request needs a Host header")),
            _ => return Err(HeadError::Host("more than one Host header")),
        }
    }
    let framing = framing(&version, &headers)?;
    Ok(Head {
        method,
        target,
        version,
        headers,
        framing,
    })
}

/// The refusal for what `httparse` found wrong.
fn refusal(error: httparse::Error, head: &[u8]) -> HeadError {
    match error {
        httparse::Error::TooManyHeaders => HeadError::TooLarge,
        httparse::Error::Version if has_version_shape(head) => HeadError::UnsupportedVersion,
        httparse::Error::HeaderName => HeadError::Malformed(
            "malformed header line: expected Name: value, with no empty name, no whitespace before the colon and no folded line",
        ),
        httparse::Error::HeaderValue => {
            HeadError::Malformed("malformed header line: a bad byte in a value")
        }
        httparse::Error::NewLine => {
            HeadError::Malformed("malformed head: a CR not followed by LF")
        }
        _ => HeadError::Malformed("malformed request line: expected METHOD /path HTTP/1.1"),
    }
}

/// Whether the request line ends in a version of the form `HTTP/d.d`.
fn has_version_shape(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
    let mut parts = line.split(|&b| b == b' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(version), None) => {
            version.len() == 8
                && version.starts_with(b"HTTP/")
                && version[5].is_ascii_digit()
                && version[6] == b'.'
                && version[7].is_ascii_digit()
        }
        _ => false,
    }
}

/// A target in origin form: `http://host:3000/events?x` is `/events?x`,
/// `http://host` is `/`. Other forms are kept as they are.
fn origin_form(target: &str) -> String {
    let rest = ["http://", "https://"].iter().find_map(|scheme| {
        target
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &target[scheme.len()..])
    });
    match rest {
        None => target.to_owned(),
        Some(rest) => match rest.find(|c| c == '/' || c == '?') {
            Some(i) if rest.as_bytes()[i] == b'/' => rest[i..].to_owned(),
            Some(i) => format!("/{}", &rest[i..]),
            None => "/".to_owned(),
        },
    }
}

fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Where the body ends, or an error when that cannot be trusted (RFC 9112
/// section 6.3): every `Transfer-Encoding` field together must name
/// exactly one coding, `chunked`; it must not come with `Content-Length`,
/// nor in an HTTP/1.0 request; a `Content-Length` must be one value of
/// plain digits that fits.
pub(crate) fn framing(version: &HTTPVersion, headers: &[Header]) -> Result<Framing, HeadError> {
    let mut codings = 0;
    let mut chunked = false;
    let mut transfer_encoding = false;
    for field in headers
        .iter()
        .filter(|h| h.field.equiv("Transfer-Encoding"))
    {
        transfer_encoding = true;
        for coding in field.value.as_str().split(',') {
            let coding = coding.trim_matches(|c| c == ' ' || c == '\t');
            codings += 1;
            chunked = coding.eq_ignore_ascii_case("chunked");
        }
    }
    let mut length = None;
    for field in headers.iter().filter(|h| h.field.equiv("Content-Length")) {
        let value = field.value.as_str();
        if length.is_some() || value.contains(',') {
            return Err(HeadError::Framing(
                "the body's length cannot be trusted: more than one Content-Length: send exactly one",
            ));
        }
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HeadError::Framing(
                "the body's length cannot be trusted: Content-Length is not plain digits",
            ));
        }
        length = Some(value.parse::<usize>().map_err(|_| {
            HeadError::Framing("the body's length cannot be trusted: Content-Length is too large")
        })?);
    }
    match (transfer_encoding, length) {
        (false, None) => Ok(Framing::Empty),
        (false, Some(n)) => Ok(Framing::Length(n)),
        (true, Some(_)) => Err(HeadError::Framing(
            "the body's length cannot be trusted: both Transfer-Encoding and Content-Length: send one of them",
        )),
        (true, None) if *version < HTTPVersion(1, 1) => Err(HeadError::Framing(
            "the body's length cannot be trusted: Transfer-Encoding in an HTTP/1.0 request",
        )),
        (true, None) if codings == 1 && chunked => Ok(Framing::Chunked),
        (true, None) => Err(HeadError::Framing(
            "the body's length cannot be trusted: Transfer-Encoding must be exactly one chunked",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delimits and parses one head from `bytes`, as a connection does.
    pub(crate) fn head(bytes: &[u8]) -> Result<Head, HeadError> {
        let skip = leading_empty_lines(bytes)?;
        match find_end(&bytes[skip..], &mut Scan::default())? {
            Some(n) => parse(&bytes[skip..skip + n]),
            None => Err(HeadError::Malformed("incomplete")),
        }
    }

    fn refused(bytes: &str) -> HeadError {
        match head(bytes.as_bytes()) {
            Ok(h) => panic!("{:?} was accepted as {:?}", bytes, h),
            Err(e) => e,
        }
    }

    fn bad_request(bytes: &str) {
        assert_eq!(refused(bytes).status(), Some(400), "{bytes:?}");
    }

    #[test]
    fn a_plain_request_is_parsed() {
        let h = head(b"GET /events?x=1 HTTP/1.1\r\nHost: a\r\nX-A:  b \r\n\r\n").unwrap();
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.target, "/events?x=1");
        assert_eq!(h.version, HTTPVersion(1, 1));
        assert_eq!(h.headers.len(), 2);
        assert_eq!(h.headers[1].value.as_str(), "b");
        assert_eq!(h.framing, Framing::Empty);
    }

    #[test]
    fn obs_fold_is_refused() {
        bad_request("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n");
        bad_request("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n");
        bad_request("GET / HTTP/1.1\r\n Host: a\r\n\r\n");
    }

    #[test]
    fn bare_cr_bare_lf_and_nul_are_refused() {
        bad_request("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nContent-Length: 5\r\n\r\n");
        bad_request("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rContent-Length: 5\r\n\r\n");
        bad_request("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n");
        bad_request("GET / HTTP/1.1\nHost: a\n\n");
        bad_request("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[test]
    fn whitespace_before_colon_and_empty_names_are_refused() {
        bad_request("GET / HTTP/1.1\r\nHost : a\r\n\r\n");
        bad_request("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n");
        bad_request("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n");
    }

    #[test]
    fn transfer_encoding_must_be_exactly_one_chunked() {
        let ok = head(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
        assert_eq!(ok.framing, Framing::Chunked);
        for te in [
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding: chunked, chunked",
            "Transfer-Encoding: xchunked",
            "Transfer-Encoding: chunked,",
            "Transfer-Encoding: identity",
            "Transfer-Encoding: chunked\r\nContent-Length: 3",
        ] {
            bad_request(&format!("POST / HTTP/1.1\r\nHost: a\r\n{te}\r\n\r\n"));
        }
        bad_request("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    }

    #[test]
    fn content_length_must_be_one_value_of_plain_digits() {
        let ok = head(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n").unwrap();
        assert_eq!(ok.framing, Framing::Length(7));
        for cl in [
            "Content-Length: 5\r\nContent-Length: 5",
            "Content-Length: 5, 5",
            "Content-Length: +5",
            "Content-Length: -1",
            "Content-Length: 0x10",
            "Content-Length: 5 5",
            "Content-Length: ",
            "Content-Length: 99999999999999999999999",
        ] {
            bad_request(&format!("POST / HTTP/1.1\r\nHost: a\r\n{cl}\r\n\r\n"));
        }
    }

    #[test]
    fn http_1_1_needs_exactly_one_host() {
        bad_request("GET / HTTP/1.1\r\n\r\n");
        bad_request("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n");
        assert!(head(b"GET / HTTP/1.0\r\n\r\n").is_ok());
    }

    #[test]
    fn an_absolute_form_target_is_reduced_to_its_path() {
        for (target, path) in [
            ("http://host:3000/events?channel=a", "/events?channel=a"),
            ("HTTPS://host/", "/"),
            ("http://host", "/"),
            ("http://host?x", "/?x"),
            ("/plain", "/plain"),
            ("*", "*"),
        ] {
            let bytes = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(head(bytes.as_bytes()).unwrap().target, path, "{target}");
        }
    }

    #[test]
    fn empty_lines_before_the_request_line_are_skipped() {
        let h = head(b"\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(h.target, "/healthz");
    }

    #[test]
    fn versions_other_than_1_0_and_1_1_get_505_and_0_9_gets_nothing() {
        for v in ["HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "HTTP/3.0"] {
            let bytes = format!("GET / {v}\r\nHost: a\r\n\r\n");
            assert_eq!(refused(&bytes), HeadError::UnsupportedVersion, "{v}");
        }
        assert_eq!(refused("GET /\r\n"), HeadError::HttpZeroNine);
        bad_request("GET / http/1.1\r\nHost: a\r\n\r\n");
        bad_request("GET / HTTP/1.1 x\r\nHost: a\r\n\r\n");
        bad_request("GET  / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[test]
    fn too_many_fields_are_431() {
        let mut bytes = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..MAX_HEADERS {
            bytes.push_str(&format!("X-{i}: v\r\n"));
        }
        bytes.push_str("\r\n");
        assert_eq!(refused(&bytes), HeadError::TooLarge);
    }

    #[test]
    fn a_request_line_of_8192_bytes_is_accepted_and_a_longer_one_is_414() {
        let target = format!("/{}", "t".repeat(8192 - "GET / HTTP/1.1".len()));
        let line = format!("GET {target} HTTP/1.1");
        assert_eq!(line.len(), 8192);
        assert!(head(format!("{line}\r\nHost: a\r\n\r\n").as_bytes()).is_ok());
        let longer = format!("GET {target}t HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(refused(&longer), HeadError::TargetTooLong);
        let unended = format!("{line}tt");
        assert_eq!(
            find_end(unended.as_bytes(), &mut Scan::default()),
            Err(HeadError::TargetTooLong)
        );
    }

    #[test]
    fn a_line_of_8192_bytes_is_accepted() {
        let value = "v".repeat(8192 - "X-Long: ".len());
        let bytes = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Long: {value}\r\n\r\n");
        let h = head(bytes.as_bytes()).unwrap();
        assert_eq!(h.headers[1].value.len(), value.len());
    }

    #[test]
    fn every_field_is_kept_in_order() {
        let h = head(
            b"GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: br\r\nAccept-Encoding: gzip\r\n\r\n",
        )
        .unwrap();
        let values: Vec<&str> = h
            .headers
            .iter()
            .filter(|h| h.field.equiv("Accept-Encoding"))
            .map(|h| h.value.as_str())
            .collect();
        assert_eq!(values, ["br", "gzip"]);
    }
}
