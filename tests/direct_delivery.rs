//! Direct delivery under contention (`src/core/direct.rs`): the hub sends
//! frames straight to sleeping streams' sockets, and their writer threads
//! wake for heartbeats, backlogs and partial sends. Neither may ever write
//! into the other's bytes, nor reorder frames.
//!
//! Streams here run on real TCP sockets (`EventStream::run_on_socket`) with
//! tiny send and receive buffers, so that sends go through in part or not
//! at all; readers pause at random, so that their writers sleep and wake at
//! random; publishers publish single messages and batches at random; and a
//! 1 ms heartbeat wakes idle writers all the time. Each reader decodes the
//! chunked HTTP framing and the event stream byte by byte: two writers
//! interleaving would break a chunk or an event, a lost frame would leave
//! a hole in a publisher's run, and a reordered one would run backwards.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use socket2::SockRef;
use sse_hub::sse::Parser;
use sse_hub::{Event, EventId, EventStream, Hub, HubConfig, Message, StreamRequest};

/// A guard against a hang, never a timing assertion.
const GUARD: Duration = Duration::from_secs(60);

const PUBLISHERS: usize = 4;
const MESSAGES: usize = 600;
const SUBSCRIBERS: usize = 12;

/// xorshift64*: the same run for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Decodes a chunked HTTP/1.1 response, fed in arbitrary pieces, into the
/// events it carries; any framing error is a failure.
struct Reader {
    head: Vec<u8>,
    in_body: bool,
    /// Bytes of the current chunk still to come, then its CRLF.
    left: usize,
    size_line: Vec<u8>,
    crlf: usize,
    parser: Parser,
    seen: Vec<usize>,
    last_id: Option<EventId>,
    events: usize,
}

impl Reader {
    fn new() -> Reader {
        Reader {
            head: Vec::new(),
            in_body: false,
            left: 0,
            size_line: Vec::new(),
            crlf: 0,
            parser: Parser::new(),
            seen: vec![0; PUBLISHERS],
            last_id: None,
            events: 0,
        }
    }

    fn done(&self) -> bool {
        self.events == PUBLISHERS * MESSAGES
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            if !self.in_body {
                self.head.push(bytes[0]);
                bytes = &bytes[1..];
                if self.head.ends_with(b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.head);
                    if !head.starts_with("HTTP/1.1 200") || !head.contains("chunked") {
                        return Err(format!("unexpected head {head:?}"));
                    }
                    self.in_body = true;
                }
            } else if self.crlf > 0 {
                let want = if self.crlf == 2 { b'\r' } else { b'\n' };
                if bytes[0] != want {
                    return Err(format!("chunk not ended by CRLF: {:?}", bytes[0] as char));
                }
                self.crlf -= 1;
                bytes = &bytes[1..];
            } else if self.left > 0 {
                let n = self.left.min(bytes.len());
                self.events(&bytes[..n])?;
                self.left -= n;
                bytes = &bytes[n..];
                if self.left == 0 {
                    self.crlf = 2;
                }
            } else {
                self.size_line.push(bytes[0]);
                bytes = &bytes[1..];
                if self.size_line.ends_with(b"\r\n") {
                    let line = &self.size_line[..self.size_line.len() - 2];
                    let text = std::str::from_utf8(line).map_err(|e| e.to_string())?;
                    let size = usize::from_str_radix(text, 16)
                        .map_err(|_| format!("bad chunk-size line {text:?}"))?;
                    if size == 0 {
                        return Err("the body ended early".into());
                    }
                    self.size_line.clear();
                    self.left = size;
                } else if self.size_line.len() > 18 {
                    return Err(format!(
                        "runaway chunk-size line {:?}",
                        String::from_utf8_lossy(&self.size_line)
                    ));
                }
            }
        }
        Ok(())
    }

    fn events(&mut self, bytes: &[u8]) -> Result<(), String> {
        for event in self.parser.feed(bytes) {
            if event.event_type != "message" {
                continue;
            }
            let mut fields = event.data.split(':');
            let (Some(publisher), Some(seq), Some(pad)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("mangled event {:?}", event.data));
            };
            let publisher: usize = publisher.parse().map_err(|_| event.data.clone())?;
            let seq: usize = seq.parse().map_err(|_| event.data.clone())?;
            if pad.len() != seq % 2_500 || pad.bytes().any(|b| b != b'x') {
                return Err(format!("mangled padding in {publisher}:{seq}"));
            }
            if publisher >= PUBLISHERS || seq != self.seen[publisher] {
                return Err(format!(
                    "publisher {publisher}: got {seq}, due {}",
                    self.seen.get(publisher).copied().unwrap_or(0)
                ));
            }
            self.seen[publisher] += 1;
            let id: EventId = event
                .id
                .as_deref()
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| format!("no ID on {}", event.data))?;
            if self.last_id.is_some_and(|last| last >= id) {
                return Err(format!("IDs went backwards at {}", event.data));
            }
            self.last_id = Some(id);
            self.events += 1;
        }
        Ok(())
    }
}

fn small_buffers(socket: &TcpStream, send: usize, receive: usize) {
    let socket = SockRef::from(socket);
    socket.set_send_buffer_size(send).expect("SO_SNDBUF");
    socket.set_recv_buffer_size(receive).expect("SO_RCVBUF");
}

/// Reads the stream in random pieces, pausing now and then, until every
/// message came; returns the first thing wrong.
fn read_all(mut client: TcpStream, seed: u64) -> Result<usize, String> {
    client
        .set_read_timeout(Some(GUARD))
        .expect("a read timeout");
    let mut rng = Rng(seed);
    let mut reader = Reader::new();
    let mut buf = vec![0; 8192];
    let mut pauses = 0;
    while !reader.done() {
        let want = 1 + rng.below(buf.len() as u64) as usize;
        let n = client
            .read(&mut buf[..want])
            .map_err(|e| format!("read: {e} after {} events", reader.events))?;
        if n == 0 {
            return Err(format!("closed after {} events", reader.events));
        }
        reader.feed(&buf[..n])?;
        if rng.below(5) == 0 {
            pauses += 1;
            thread::sleep(Duration::from_micros(rng.below(3_000)));
        }
    }
    Ok(pauses)
}

fn publish_all(hub: &Hub, publisher: usize, seed: u64) {
    let mut rng = Rng(seed);
    let message = |seq: usize| Event::new(format!("{publisher}:{seq}:{}", "x".repeat(seq % 2_500)));
    let mut seq = 0;
    while seq < MESSAGES {
        let batch = (1 + rng.below(4) as usize).min(MESSAGES - seq);
        if batch == 1 {
            hub.publish(&message(seq), None).expect("published");
        } else {
            let messages: Vec<Message> = (seq..seq + batch)
                .map(|seq| Message {
                    event: message(seq),
                    channel: None,
                })
                .collect();
            hub.publish_batch(&messages).expect("published");
        }
        seq += batch;
        match rng.below(8) {
            0 => thread::sleep(Duration::from_micros(rng.below(2_000))),
            1 | 2 => thread::yield_now(),
            _ => {}
        }
    }
}

#[test]
fn frames_arrive_once_in_order_whoever_sends_them() {
    let hub = Hub::start(HubConfig {
        queue: 1_000_000,
        heartbeat: Some(Duration::from_millis(1)),
        write_timeout: GUARD,
        ..HubConfig::default()
    })
    .expect("a hub starts");
    let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let address = listener.local_addr().expect("its address");

    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for s in 0..SUBSCRIBERS {
        let client = TcpStream::connect(address).expect("connects");
        let (socket, _) = listener.accept().expect("accepts");
        small_buffers(&socket, 4_096, 4_096);
        small_buffers(&client, 4_096, 4_096);
        let stream = EventStream::open(&hub, StreamRequest::new()).expect("a stream");
        writers.push(thread::spawn(move || stream.run_on_socket(&socket)));
        readers.push(thread::spawn(move || read_all(client, 1 + s as u64)));
    }

    let hub = Arc::new(hub);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let hub = Arc::clone(&hub);
            thread::spawn(move || publish_all(&hub, p, 100 + p as u64))
        })
        .collect();
    for publisher in publishers {
        publisher.join().expect("a publisher ran");
    }
    let mut pauses = 0;
    for (s, reader) in readers.into_iter().enumerate() {
        match reader.join().expect("a reader ran") {
            Ok(paused) => pauses += paused,
            Err(e) => panic!("subscriber {s}: {e}"),
        }
    }
    assert!(pauses > 0, "the readers never paused");
    // The count follows the bytes: wait for the last writer to add its own.
    let due = (SUBSCRIBERS * PUBLISHERS * MESSAGES) as u64;
    let started = std::time::Instant::now();
    let stats = loop {
        let stats = hub.stats().expect("stats");
        if stats.delivered >= due || started.elapsed() > GUARD {
            break stats;
        }
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(stats.delivered, due, "every delivery counted once");
    assert_eq!(stats.dropped_slow, 0);
    hub.stop();
    for writer in writers {
        writer.join().expect("a writer ran");
    }
}
