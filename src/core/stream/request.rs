//! [`StreamRequest`]: what a subscriber asked for (channels, last event
//! ID, CORS origin, gzip), checked by the rules of `GET /events`, and how
//! its stream is framed on the connection ([`Framing`]).

use std::net::SocketAddr;

use crate::core::channel::{Channel, channel_set};
use crate::core::config::check_header_value;
use crate::core::gzip;
use crate::error::Error;

/// How the stream's bytes are framed on the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// An HTTP/1.1 response: the head, then a chunked body that ends with
    /// the last chunk, so the connection can carry another request after
    /// it. Several common clients hang on a close-delimited HTTP/1.1 body.
    Chunked,
    /// An HTTP/1.0 response: the head (`Connection: close`), then a body
    /// that ends when the connection closes.
    CloseDelimited,
    /// No head and no framing: only the events. For an HTTP server that
    /// writes the head and frames the body itself (chunked, or
    /// close-delimited as after rouille's `Upgrade`). The head carries every
    /// field of [`EventStream::response_headers`](super::EventStream::response_headers)
    /// (content type, no caching, no proxy buffering, CORS, and `Vary` and
    /// `Content-Encoding` for gzip), asked for after the stream is opened.
    ///
    /// The body must reach the subscriber as it is written: hand the
    /// connection over after the head, not a `Read` body the server copies
    /// through its own buffer (see [`EventStream::run`](super::EventStream::run)).
    BodyOnly,
}

/// What a subscriber asked for: the query and headers of `GET /events`,
/// checked.
///
/// # Example
///
/// ```
/// use sse_hub::StreamRequest;
///
/// let request = StreamRequest::from_query("channel=news&channel=user:42", Some("1700000000000-3"))?;
/// assert_eq!(request.channels().len(), 2);
/// assert_eq!(request.last_event_id(), Some("1700000000000-3"));
///
/// // The same rules as GET /events: a bad channel name is refused.
/// assert!(StreamRequest::from_query("channel=a%20b", None).is_err());
/// # Ok::<(), sse_hub::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct StreamRequest {
    pub(super) channels: Vec<Channel>,
    pub(super) last_event_id: Option<String>,
    pub(super) framing: Framing,
    pub(super) cors_origin: Option<String>,
    pub(super) peer: Option<SocketAddr>,
    /// Who the subscriber is, as a token or the application said.
    pub(super) user: Option<String>,
    /// The server offers gzip for this stream (so the response varies with
    /// `Accept-Encoding`).
    pub(super) gzip_offered: bool,
    /// The request's `Accept-Encoding` accepts gzip.
    pub(super) gzip_accepted: bool,
}

impl Default for StreamRequest {
    fn default() -> StreamRequest {
        StreamRequest::new()
    }
}

impl StreamRequest {
    /// A request for every message without a channel, from the start, as a
    /// chunked HTTP/1.1 response with no CORS header, not compressed.
    pub fn new() -> StreamRequest {
        StreamRequest {
            channels: Vec::new(),
            last_event_id: None,
            framing: Framing::Chunked,
            cors_origin: None,
            peer: None,
            user: None,
            gzip_offered: false,
            gzip_accepted: false,
        }
    }

    /// Reads a request the way `GET /events` does: `channel=NAME`
    /// (repeatable) and `lastEventId=ID` from the query string (without the
    /// `?`; percent-decoded), and the `Last-Event-ID` header, which wins over
    /// the query when both are there. An empty ID counts as none. Other
    /// query parameters are ignored: libraries and proxies add their own.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidChannel`] or [`Error::TooManyChannels`]. An ID that
    /// is not of the `<ms>-<seq>` form is not an error: the stream opens
    /// with a `gap` event instead.
    pub fn from_query(query: &str, last_event_id: Option<&str>) -> Result<StreamRequest, Error> {
        let mut names = Vec::new();
        let mut from_query = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "channel" => names.push(value.into_owned()),
                "lastEventId" => from_query = Some(value.into_owned()),
                _ => {}
            }
        }
        let channels = channel_set(names.iter().map(String::as_str))?;
        let last_event_id = last_event_id
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .or(from_query.filter(|id| !id.is_empty()));
        Ok(StreamRequest {
            channels,
            last_event_id,
            ..StreamRequest::new()
        })
    }

    /// Joins `channel` as well.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyChannels`] past 32 distinct channels.
    pub fn channel(mut self, channel: Channel) -> Result<StreamRequest, Error> {
        self.channels = channel_set(
            self.channels
                .iter()
                .map(Channel::as_str)
                .chain([channel.as_str()]),
        )?;
        Ok(self)
    }

    /// Resumes after `id`: the client's last event ID, as it sent it.
    pub fn resume_after(mut self, id: &str) -> StreamRequest {
        self.last_event_id = Some(id.to_owned()).filter(|id| !id.is_empty());
        self
    }

    /// Frames the stream for this kind of response.
    pub fn framing(mut self, framing: Framing) -> StreamRequest {
        self.framing = framing;
        self
    }

    /// Sends `Access-Control-Allow-Origin: <origin>` in the response head.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `origin` is not a printable ASCII header
    /// value.
    pub fn cors_origin(mut self, origin: &str) -> Result<StreamRequest, Error> {
        check_header_value("cors_origin", origin)?;
        self.cors_origin = Some(origin.to_owned());
        Ok(self)
    }

    /// Offers gzip, as the server's `--compress` does: the stream is sent
    /// with `Content-Encoding: gzip` if `accept_encoding`, the value of the
    /// request's `Accept-Encoding` header, accepts gzip (`gzip;q=0` and
    /// `identity` do not; `*` does), and the framing is not
    /// [`Framing::CloseDelimited`] (never for HTTP/1.0). Otherwise it is
    /// plain. Either way the head says `Vary: Accept-Encoding`, since the
    /// response now depends on that header. Each compressed stream keeps a
    /// compressor of about 16 KiB while it runs.
    ///
    /// With [`Framing::BodyOnly`] the application writes the head: it adds
    /// `Content-Encoding: gzip` when [`EventStream::gzip`](super::EventStream::gzip) says so.
    ///
    /// # Example
    ///
    /// ```
    /// use sse_hub::{Framing, StreamRequest};
    ///
    /// let request = StreamRequest::new().offer_gzip(Some("gzip, deflate, br"));
    /// assert!(request.gzip());
    /// assert!(!StreamRequest::new().offer_gzip(Some("gzip;q=0, *")).gzip());
    /// assert!(!StreamRequest::new().offer_gzip(None).gzip());
    /// // HTTP/1.0 streams stay plain.
    /// let old = request.framing(Framing::CloseDelimited);
    /// assert!(!old.gzip());
    /// ```
    pub fn offer_gzip(mut self, accept_encoding: Option<&str>) -> StreamRequest {
        self.gzip_offered = true;
        self.gzip_accepted = accept_encoding.is_some_and(gzip::accepts_gzip);
        self
    }

    /// Names the client's address in the log lines of the stream.
    pub fn peer(mut self, peer: Option<SocketAddr>) -> StreamRequest {
        self.peer = peer;
        self
    }

    /// Who the subscriber is (a token's `sub`, or what the application's
    /// auth callback said), for the log.
    pub fn user(mut self, user: Option<String>) -> StreamRequest {
        self.user = user;
        self
    }

    /// The channels asked for, each once, in the order first given.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// The last event ID, as the client sent it.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// True if the stream is to be gzip-compressed: offered, accepted, and
    /// not close-delimited (see [`StreamRequest::offer_gzip`]).
    pub fn gzip(&self) -> bool {
        self.gzip_offered && self.gzip_accepted && self.framing != Framing::CloseDelimited
    }
}
