//! Patched: the head parser and the body decoder against a reference
//! reading of RFC 9112, over a corpus of known-bad requests and byte
//! strings that proptest makes from requests valid and broken.
//!
//! Each side splits a byte stream into requests, the way a connection
//! reads them one after the other: the fork with the functions its
//! connections use (`head.rs`, `body.rs`), the reference with a small
//! framer of its own, written from the RFC's grammar and nothing else.
//! They must agree on every request boundary (where each head and each
//! body ends, and the body's bytes), and on whether the stream is refused.

use std::io::Read;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use proptest::prelude::*;

use crate::body::Body;
use crate::head::{self, Framing, MAX_HEAD};

/// A request as framed: where its head ended, where its body ended, and
/// the body's bytes.
#[derive(Debug, PartialEq, Eq)]
struct Framed {
    head_end: usize,
    end: usize,
    body: Vec<u8>,
}

/// How a stream ends after its last whole request.
#[derive(Debug, PartialEq, Eq)]
enum Rest {
    /// Nothing left over.
    Clean,
    /// A request started and is not complete yet.
    Incomplete,
    /// The next request (its head or body) is refused.
    Refused,
}

/// The fork's reading, with the functions a connection uses.
fn fork_split(bytes: &[u8]) -> (Vec<Framed>, Rest) {
    let mut requests = Vec::new();
    let mut at = 0;
    loop {
        let skip = match head::leading_empty_lines(&bytes[at..]) {
            Ok(n) => n,
            Err(_) => return (requests, Rest::Refused),
        };
        let start = at + skip;
        if start == bytes.len() {
            return (requests, Rest::Clean);
        }
        let window = &bytes[start..bytes.len().min(start + MAX_HEAD)];
        let length = match head::find_end(window, &mut head::Scan::default()) {
            Err(_) => return (requests, Rest::Refused),
            Ok(Some(n)) => n,
            Ok(None) if window.len() == MAX_HEAD => return (requests, Rest::Refused),
            Ok(None) => return (requests, Rest::Incomplete),
        };
        let parsed = match head::parse(&window[..length]) {
            Ok(h) => h,
            Err(_) => return (requests, Rest::Refused),
        };
        let head_end = start + length;
        let mut source = std::io::Cursor::new(&bytes[head_end..]);
        let mut body = Vec::new();
        let done = Arc::new(AtomicBool::new(false));
        let read = Body::new(&mut source, parsed.framing, done).read_to_end(&mut body);
        match read {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return (requests, Rest::Incomplete)
            }
            Err(_) => return (requests, Rest::Refused),
        }
        at = head_end + source.position() as usize;
        requests.push(Framed {
            head_end,
            end: at,
            body,
        });
    }
}

/// The reference reading, from RFC 9112 alone.
mod reference {
    use super::{Framed, Rest, MAX_HEAD};

    const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~";

    fn tchar(b: u8) -> bool {
        b.is_ascii_alphanumeric() || TCHAR.contains(&b)
    }

    fn token(s: &[u8]) -> bool {
        !s.is_empty() && s.iter().all(|b| tchar(*b))
    }

    /// RFC 9112 2.2: a bare CR is invalid, and this reading (as the SPEC
    /// asks) treats a bare LF and a NUL the same way.
    fn bad_byte_before(s: &[u8], end: usize) -> bool {
        (0..end).any(|i| match s[i] {
            0 => true,
            b'\r' => i + 1 < s.len() && s[i + 1] != b'\n',
            b'\n' => i == 0 || s[i - 1] != b'\r',
            _ => false,
        })
    }

    fn position(s: &[u8], what: &[u8]) -> Option<usize> {
        s.windows(what.len()).position(|w| w == what)
    }

    /// An HTTP/0.9 request line: method, space, target, no version.
    fn simple_request(line: &[u8]) -> bool {
        let parts: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
        parts.len() == 2 && token(parts[0]) && !parts[1].is_empty()
    }

    fn trim(s: &[u8]) -> &[u8] {
        let mut s = s;
        while let [b' ' | b'\t', rest @ ..] = s {
            s = rest;
        }
        while let [rest @ .., b' ' | b'\t'] = s {
            s = rest;
        }
        s
    }

    /// The body framing of a valid head, or `None` if it is refused.
    fn head(head: &[u8]) -> Option<Option<(bool, usize)>> {
        let text = &head[..head.len() - 4];
        let lines: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .collect();
        let (request_line, fields) = lines.split_first()?;
        let parts: Vec<&[u8]> = request_line.split(|b| *b == b' ').collect();
        if parts.len() != 3 || !token(parts[0]) || parts[1].is_empty() {
            return None;
        }
        if !parts[1].iter().all(|b| (0x21..0x7f).contains(b)) {
            return None;
        }
        let http_1_1 = match parts[2] {
            b"HTTP/1.1" => true,
            b"HTTP/1.0" => false,
            _ => return None,
        };
        if fields.len() > 100 {
            return None;
        }
        let mut hosts = 0;
        let mut codings: Vec<Vec<u8>> = Vec::new();
        let mut te = false;
        let mut lengths: Vec<&[u8]> = Vec::new();
        for field in fields.iter() {
            let colon = field.iter().position(|b| *b == b':')?;
            let (name, value) = (&field[..colon], trim(&field[colon + 1..]));
            if !token(name)
                || !value
                    .iter()
                    .all(|b| *b == b'\t' || (0x20..0x7f).contains(b))
            {
                return None;
            }
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            match name.as_str() {
                "host" => hosts += 1,
                "transfer-encoding" => {
                    te = true;
                    for coding in value.split(|b| *b == b',') {
                        codings.push(trim(coding).to_ascii_lowercase());
                    }
                }
                "content-length" => lengths.push(value),
                _ => {}
            }
        }
        if http_1_1 && hosts != 1 {
            return None;
        }
        if te {
            let only_chunked = codings.len() == 1 && codings[0] == b"chunked";
            if !lengths.is_empty() || !http_1_1 || !only_chunked {
                return None;
            }
            return Some(Some((true, 0)));
        }
        match lengths.as_slice() {
            [] => Some(None),
            [one] if !one.is_empty() && one.iter().all(u8::is_ascii_digit) => {
                let n: usize = std::str::from_utf8(one).ok()?.parse().ok()?;
                Some(Some((false, n)))
            }
            _ => None,
        }
    }

    enum Chunked {
        Body(Vec<u8>, usize),
        Incomplete,
        Refused,
    }

    /// A line ending in CRLF at `at`: its content and where the next
    /// starts; or what is wrong.
    fn line(s: &[u8], at: usize, limit: usize) -> Result<(&[u8], usize), Chunked> {
        let rest = &s[at..];
        for (i, b) in rest.iter().enumerate() {
            match b {
                b'\n' => return Err(Chunked::Refused),
                0 => return Err(Chunked::Refused),
                b'\r' if i >= limit => return Err(Chunked::Refused),
                b'\r' => {
                    return match rest.get(i + 1) {
                        Some(b'\n') => Ok((&rest[..i], at + i + 2)),
                        Some(_) => Err(Chunked::Refused),
                        None => Err(Chunked::Incomplete),
                    }
                }
                _ if i >= limit => return Err(Chunked::Refused),
                _ => {}
            }
        }
        Err(if rest.len() > limit {
            Chunked::Refused
        } else {
            Chunked::Incomplete
        })
    }

    /// `chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`
    fn extensions(s: &[u8]) -> bool {
        enum At {
            Start,
            Name,
            InName,
            AfterName,
            Value,
            Token,
            Quoted,
            Escape,
            AfterValue,
        }
        let mut at = At::Start;
        for &b in s {
            let ws = b == b' ' || b == b'\t';
            let text = b == b'\t' || b >= 0x20 && b != 0x7f;
            at = match at {
                At::Start | At::AfterValue if ws => at,
                At::Start | At::AfterValue if b == b';' => At::Name,
                At::Name if ws => At::Name,
                At::Name if tchar(b) => At::InName,
                At::InName if tchar(b) => At::InName,
                At::InName | At::AfterName if ws => At::AfterName,
                At::InName | At::AfterName if b == b';' => At::Name,
                At::InName | At::AfterName if b == b'=' => At::Value,
                At::Value if ws => At::Value,
                At::Value if b == b'"' => At::Quoted,
                At::Value if tchar(b) => At::Token,
                At::Token if tchar(b) => At::Token,
                At::Token if ws => At::AfterValue,
                At::Token if b == b';' => At::Name,
                At::Quoted if b == b'"' => At::AfterValue,
                At::Quoted if b == b'\\' => At::Escape,
                At::Quoted | At::Escape if text => At::Quoted,
                _ => return false,
            };
        }
        matches!(
            at,
            At::Start | At::InName | At::AfterName | At::Token | At::AfterValue
        )
    }

    fn chunked(s: &[u8], start: usize) -> Chunked {
        let mut at = start;
        let mut body = Vec::new();
        loop {
            let (size_line, next) = match line(s, at, 4096) {
                Ok(l) => l,
                Err(e) => return e,
            };
            let digits = size_line
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if digits == 0 || !extensions(&size_line[digits..]) {
                return Chunked::Refused;
            }
            let mut size: u128 = 0;
            for d in &size_line[..digits] {
                size = (size * 16 + (*d as char).to_digit(16).unwrap_or(0) as u128)
                    .min(u128::MAX / 32);
            }
            if size > usize::MAX as u128 {
                return Chunked::Refused;
            }
            let size = size as usize;
            at = next;
            if size == 0 {
                let mut fields = 0;
                loop {
                    let (field, next) = match line(s, at, MAX_HEAD) {
                        Ok(l) => l,
                        Err(e) => return e,
                    };
                    at = next;
                    if field.is_empty() {
                        return Chunked::Body(body, at);
                    }
                    fields += 1;
                    let colon = match field.iter().position(|b| *b == b':') {
                        Some(c) => c,
                        None => return Chunked::Refused,
                    };
                    let valid_value = field[colon + 1..]
                        .iter()
                        .all(|b| *b == b'\t' || *b >= 0x20 && *b != 0x7f);
                    if !token(&field[..colon]) || !valid_value || fields > 100 {
                        return Chunked::Refused;
                    }
                }
            }
            if s.len() - at < size {
                return Chunked::Incomplete;
            }
            body.extend_from_slice(&s[at..at + size]);
            at += size;
            match s.get(at..at + 2) {
                Some(b"\r\n") => at += 2,
                Some(_) => return Chunked::Refused,
                None => return Chunked::Incomplete,
            }
        }
    }

    pub(super) fn split(bytes: &[u8]) -> (Vec<Framed>, Rest) {
        let mut requests = Vec::new();
        let mut at = 0;
        loop {
            while bytes[at..].starts_with(b"\r\n") {
                at += 2;
            }
            let rest = &bytes[at..];
            if rest.is_empty() {
                return (requests, Rest::Clean);
            }
            let end = position(rest, b"\r\n\r\n").map(|p| p + 4);
            let scan_to = end.unwrap_or(rest.len());
            if bad_byte_before(rest, scan_to) {
                return (requests, Rest::Refused);
            }
            let first_line = position(rest, b"\r\n");
            if let Some(n) = first_line {
                if simple_request(&rest[..n]) {
                    return (requests, Rest::Refused);
                }
            }
            let line_too_long = match first_line {
                Some(n) => n > 8192,
                None => rest.len() >= 8194,
            };
            if line_too_long {
                return (requests, Rest::Refused);
            }
            let end = match end {
                Some(end) if end <= MAX_HEAD => end,
                Some(_) => return (requests, Rest::Refused),
                None if rest.len() >= MAX_HEAD => return (requests, Rest::Refused),
                None => return (requests, Rest::Incomplete),
            };
            let head_end = at + end;
            let (body, next) = match head(&rest[..end]) {
                None => return (requests, Rest::Refused),
                Some(None) => (Vec::new(), head_end),
                Some(Some((false, n))) => {
                    if bytes.len() - head_end < n {
                        return (requests, Rest::Incomplete);
                    }
                    (bytes[head_end..head_end + n].to_vec(), head_end + n)
                }
                Some(Some((true, _))) => match chunked(bytes, head_end) {
                    Chunked::Body(body, next) => (body, next),
                    Chunked::Incomplete => return (requests, Rest::Incomplete),
                    Chunked::Refused => return (requests, Rest::Refused),
                },
            };
            requests.push(Framed {
                head_end,
                end: next,
                body,
            });
            at = next;
        }
    }
}

/// The corpus of known-bad requests, unescaped.
fn corpus() -> Vec<Vec<u8>> {
    include_str!("../tests/corpus/bad_requests.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(unescape)
        .collect()
}

fn unescape(line: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let (b, used) = match bytes[i + 1] {
                b'r' => (b'\r', 2),
                b'n' => (b'\n', 2),
                b't' => (b'\t', 2),
                b'0' => (0, 2),
                b'\\' => (b'\\', 2),
                b'x' => (
                    u8::from_str_radix(&line[i + 2..i + 4], 16).expect("a \\xNN escape"),
                    4,
                ),
                other => panic!("unknown escape \\{}", other as char),
            };
            out.push(b);
            i += used;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    let fork = fork_split(bytes);
    let reference = reference::split(bytes);
    prop_assert_eq!(&fork, &reference, "on {:?}", String::from_utf8_lossy(bytes));
    Ok(())
}

#[test]
fn every_request_of_the_corpus_is_refused_before_a_request_is_read() {
    let corpus = corpus();
    assert!(corpus.len() > 60);
    for bytes in corpus {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (requests, rest) = fork_split(&bytes);
        assert!(requests.is_empty(), "{:?} gave {:?}", text, requests);
        assert_eq!(rest, Rest::Refused, "{:?}", text);
        assert_eq!(reference::split(&bytes), (requests, rest), "{:?}", text);
    }
}

#[test]
fn valid_streams_are_split_alike() {
    let stream = b"\r\nPOST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc\
        POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;x=\"y\"\r\nhi\r\n0\r\nT: v\r\n\r\n\
        GET http://h/c HTTP/1.0\r\n\r\nGET /d HT";
    let (requests, rest) = fork_split(stream);
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[1].body, b"hi");
    assert_eq!(rest, Rest::Incomplete);
    assert_eq!(reference::split(stream), (requests, rest));
}

/// Pieces that requests are made of, valid and not.
fn request_line() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "GET / HTTP/1.1",
        "POST /broadcast HTTP/1.1",
        "POST /broadcast HTTP/1.0",
        "GET http://h:3000/events?x=1 HTTP/1.1",
        "GET /",
        "GET / HTTP/2.0",
        "GET / http/1.1",
        "GET  / HTTP/1.1",
        "GET / HTTP/1.1 ",
        "OPTIONS * HTTP/1.1",
        "G\u{7f}T / HTTP/1.1",
    ])
    .prop_map(str::to_owned)
}

fn field() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Host: h",
        "Host: h",
        "Content-Length: 3",
        "Content-Length: 0",
        "Content-Length: 12",
        "Content-Length:  5 ",
        "Content-Length: +3",
        "Content-Length: 3, 3",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: CHUNKED",
        "Transfer-Encoding: identity",
        "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding : chunked",
        " Transfer-Encoding: chunked",
        "\tx",
        "X-A: b\nContent-Length: 4",
        "X-A: b\rc",
        "X-A: \0",
        ": empty",
        "X-Empty:",
        "X-Tab:\tv",
        "Accept-Encoding: gzip",
    ])
    .prop_map(str::to_owned)
}

fn chunk() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "0",
            "1",
            "3",
            "5",
            "A",
            "00003",
            "x",
            "0x3",
            "-1",
            "fffffffffffffffffff",
        ]),
        prop::sample::select(vec!["", ";a", ";a=b", " ; a = \"x;y\"", ";", ";a=", "\t;b"]),
        "[a-z]{0,6}",
        prop::sample::select(vec!["\r\n", "\r\n", "\n", "XX"]),
    )
        .prop_map(|(size, ext, data, end)| format!("{size}{ext}\r\n{data}{end}"))
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,14}",
        (
            prop::collection::vec(chunk(), 0..3),
            prop::sample::select(vec![
                "0\r\n\r\n",
                "0\r\nT: v\r\n\r\n",
                "0;e\r\n\r\n",
                "0\r\n",
                ""
            ]),
        )
            .prop_map(|(chunks, last)| format!("{}{last}", chunks.concat())),
    ]
}

fn request() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "", "\r\n", "\r\n\r\n", "\n"]),
        request_line(),
        prop::collection::vec(field(), 0..5),
        body(),
    )
        .prop_map(|(lead, line, fields, body)| {
            let mut s = format!("{lead}{line}\r\n");
            for f in fields {
                s.push_str(&f);
                s.push_str("\r\n");
            }
            s.push_str("\r\n");
            s.push_str(&body);
            s
        })
}

/// Bytes made of requests and corpus entries, then perhaps mutated: a
/// byte changed, inserted or removed somewhere.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let corpus = corpus();
    (
        prop::collection::vec(
            prop_oneof![
                3 => request().prop_map(String::into_bytes),
                1 => prop::sample::select(corpus),
            ],
            1..4,
        ),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 0..3),
    )
        .prop_map(|(parts, mutations)| {
            let mut bytes = parts.concat();
            for (at, byte, kind) in mutations {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn request_boundaries_match_the_reference_reading(bytes in stream()) {
        agree(&bytes)?;
    }

    #[test]
    fn any_bytes_are_framed_as_the_reference_reads_them(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        agree(&bytes)?;
    }

    #[test]
    fn bytes_after_a_valid_head_are_framed_as_the_reference_reads_them(
        head in request(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&tail);
        agree(&bytes)?;
    }
}
