//! What the unit tests share: the fuzz pass's runner, text that goes for
//! the edges of the wire format, a reference reading of a stream, and a
//! gzip reader that is not zlib.

use std::fmt::Debug;
use std::io::Write;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::core::sse::{Dispatched, Parser};

/// How long each property of the fuzz pass runs: 6 seconds, so that the
/// eight of them, two at a time, take about 25 s in a debug build; or
/// `FUZZ_SECONDS` from the environment, for a longer run by hand.
fn fuzz_budget() -> Duration {
    let seconds = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    Duration::from_secs(seconds.unwrap_or(6))
}

/// Runs `test` on inputs from `strategy` in batches until the fuzz
/// budget has passed, each batch from a new random seed. A failure
/// panics with the smallest failing input proptest could shrink to.
pub(crate) fn fuzz<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let (start, budget) = (Instant::now(), fuzz_budget());
    let mut cases = 0;
    while start.elapsed() < budget {
        let config = Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        };
        if let Err(failure) = TestRunner::new(config).run(&strategy, &test) {
            panic!("{name}, after {cases} passing cases: {failure}");
        }
        cases += 256;
    }
    eprintln!("{name}: {cases} cases");
}

/// Text that goes for the edges: line breaks of every kind, NUL, field
/// names, colons and spaces, multi-byte characters; or anything at all.
pub(crate) fn tricky_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\r"),
        Just("\n"),
        Just("\r\n"),
        Just("\n\r"),
        Just("\0"),
        Just(":"),
        Just(" "),
        Just("data: x"),
        Just("id: 1-1"),
        Just("event: e"),
        Just("retry: 1"),
        Just("a"),
        Just("é"),
        Just("🎉"),
        Just("\u{feff}"),
        Just("\u{2028}"),
    ];
    prop_oneof![
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat()),
        any::<String>(),
    ]
}

/// Reads a whole stream at once, the way a browser would.
pub(crate) fn dispatch(stream: &[u8]) -> Vec<Dispatched> {
    Parser::new().feed(stream)
}

/// What a client can receive of `data`: every line break as LF.
pub(crate) fn as_received(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

/// An incremental gzip reader that is not zlib (flate2's default
/// backend): what a client has decoded so far.
pub(crate) struct GzipReader(pub(crate) flate2::write::GzDecoder<Vec<u8>>);

impl GzipReader {
    pub(crate) fn new() -> GzipReader {
        GzipReader(flate2::write::GzDecoder::new(Vec::new()))
    }

    /// Decodes `bytes` and returns the text they completed.
    pub(crate) fn read(&mut self, bytes: &[u8]) -> String {
        self.0.write_all(bytes).unwrap();
        self.0.flush().unwrap();
        String::from_utf8(std::mem::take(self.0.get_mut())).unwrap()
    }
}
