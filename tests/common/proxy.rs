//! A TCP proxy that a test can cut: it sits between a client and the hub,
//! forwards bytes both ways, and on [`Proxy::cut`] closes every connection
//! it carries at once, the way a network drop or a load balancer restart
//! does, while its own address stays open for the client's reconnect.
//!
//! The upstream can change at runtime ([`Proxy::set_upstream`]), so a hub
//! restarted on a new port can be put behind the same address. New
//! connections can be held (accepted, then kept waiting until the proxy
//! forwards again) or refused (closed at once): "the network is down" for a
//! while, so that messages are published while a client cannot be there.
//!
//! It keeps what went through each connection (the first
//! [`TRANSCRIPT_LIMIT`] bytes each way) so a test can see the requests a
//! client sent and what the hub sent back. Plain threads: one acceptor, two
//! pumps per connection.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

/// How many bytes each way of one connection the proxy keeps.
pub const TRANSCRIPT_LIMIT: usize = 4 << 20;

/// What the proxy does with a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Connect it to the upstream and forward both ways.
    Forward,
    /// Accept it and keep it waiting until the proxy forwards again (or a
    /// cut closes it).
    Hold,
    /// Close it at once, with nothing sent.
    Refuse,
}

/// A running proxy; dropping it closes everything it carries.
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when the admission, the generation or `stopped` changes.
    changed: Condvar,
}

struct State {
    upstream: SocketAddr,
    admission: Admission,
    /// Bumped by every cut: a connection accepted before it never forwards.
    generation: u64,
    /// The sockets of every connection accepted and not yet closed (both
    /// sides once connected upstream), to shut down on a cut.
    open: Vec<(u64, Vec<TcpStream>)>,
    next_id: u64,
    /// What went through each forwarded connection, in the order accepted.
    transcripts: Vec<Arc<Transcript>>,
    refused: usize,
    stopped: bool,
}

/// The bytes one connection carried: `sent` by the client, `received` from
/// the upstream.
#[derive(Default)]
struct Transcript {
    sent: Mutex<Vec<u8>>,
    received: Mutex<Vec<u8>>,
}

impl Proxy {
    /// Starts a proxy on a free port of 127.0.0.1, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                upstream,
                admission: Admission::Forward,
                generation: 0,
                open: Vec::new(),
                next_id: 0,
                transcripts: Vec::new(),
                refused: 0,
                stopped: false,
            }),
            changed: Condvar::new(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                for down in listener.incoming() {
                    if shared.lock().stopped {
                        return;
                    }
                    let Ok(down) = down else { continue };
                    let shared = Arc::clone(&shared);
                    thread::spawn(move || serve(&shared, down));
                }
            })
        };
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends new connections to `upstream` from now on (open ones stay
    /// where they are until cut).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.shared.lock().upstream = upstream;
    }

    /// Sets what happens to new connections; switching to
    /// [`Admission::Forward`] releases the held ones.
    pub fn admit(&self, admission: Admission) {
        self.shared.lock().admission = admission;
        self.shared.changed.notify_all();
    }

    /// Closes every connection the proxy carries or holds, both sides, at
    /// once; the listener stays. Returns how many were closed.
    pub fn cut(&self) -> usize {
        let mut state = self.shared.lock();
        state.generation += 1;
        let open = std::mem::take(&mut state.open);
        for (_, sockets) in &open {
            for socket in sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
        drop(state);
        self.shared.changed.notify_all();
        open.len()
    }

    /// Connections accepted and not yet closed (held ones included).
    pub fn open_connections(&self) -> usize {
        self.shared.lock().open.len()
    }

    /// Connections refused while [`Admission::Refuse`] was set.
    pub fn refused(&self) -> usize {
        self.shared.lock().refused
    }

    /// Every request head clients sent through the proxy (request line and
    /// headers, without the empty line), in the order the connections were
    /// accepted and, within one, the order sent.
    pub fn request_heads(&self) -> Vec<String> {
        let transcripts = self.shared.lock().transcripts.clone();
        let mut heads = Vec::new();
        for transcript in transcripts {
            let sent = transcript.sent.lock().unwrap();
            let text = String::from_utf8_lossy(&sent);
            let mut rest = &*text;
            // Only heads are sent on event streams; a body (there is none
            // through this proxy in the tests) would be skipped as junk.
            while let Some(end) = rest.find("\r\n\r\n") {
                let head = &rest[..end];
                if head.contains(" HTTP/1.") {
                    heads.push(head.to_owned());
                }
                rest = &rest[end + 4..];
            }
        }
        heads
    }

    /// How many times `needle` occurs in what upstreams sent back, over
    /// every connection so far.
    pub fn count_received(&self, needle: &str) -> usize {
        let transcripts = self.shared.lock().transcripts.clone();
        transcripts
            .iter()
            .map(|t| {
                let received = t.received.lock().unwrap();
                String::from_utf8_lossy(&received).matches(needle).count()
            })
            .sum()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.cut();
        // Wake the acceptor so that it sees `stopped`.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One client connection: wait while held, connect upstream, then pump both
/// ways until either side ends or a cut closes it.
fn serve(shared: &Shared, down: TcpStream) {
    let Ok(down_handle) = down.try_clone() else {
        return;
    };
    let mut state = shared.lock();
    let generation = state.generation;
    let id = state.next_id;
    state.next_id += 1;
    state.open.push((id, vec![down_handle]));
    let upstream = loop {
        if state.stopped || state.generation != generation {
            return close(state, id, &down);
        }
        match state.admission {
            Admission::Forward => break state.upstream,
            Admission::Refuse => {
                state.refused += 1;
                return close(state, id, &down);
            }
            Admission::Hold => {
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
    };
    drop(state);

    let up = TcpStream::connect(upstream);
    let mut state = shared.lock();
    let (Ok(up), true) = (up, state.generation == generation && !state.stopped) else {
        return close(state, id, &down);
    };
    let (Ok(up_handle), Ok(up_reader), Ok(down_writer)) =
        (up.try_clone(), up.try_clone(), down.try_clone())
    else {
        return close(state, id, &down);
    };
    if let Some((_, sockets)) = state.open.iter_mut().find(|(open, _)| *open == id) {
        sockets.push(up_handle);
    }
    let transcript = Arc::new(Transcript::default());
    state.transcripts.push(Arc::clone(&transcript));
    drop(state);

    let back = {
        let transcript = Arc::clone(&transcript);
        thread::spawn(move || pump(up_reader, down_writer, &transcript.received))
    };
    pump(down, up, &transcript.sent);
    let _ = back.join();
    let mut state = shared.lock();
    state.open.retain(|(open, _)| *open != id);
}

/// Forgets connection `id` and closes it.
fn close(mut state: MutexGuard<'_, State>, id: u64, down: &TcpStream) {
    state.open.retain(|(open, _)| *open != id);
    drop(state);
    let _ = down.shutdown(Shutdown::Both);
}

/// Copies `from` to `to`, keeping a copy in `kept`, until either side ends;
/// then closes both, so the other direction ends too.
fn pump(mut from: TcpStream, mut to: TcpStream, kept: &Mutex<Vec<u8>>) {
    let mut buffer = [0; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut kept = kept.lock().unwrap();
            let room = TRANSCRIPT_LIMIT.saturating_sub(kept.len()).min(n);
            kept.extend_from_slice(&buffer[..room]);
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
