//! Third-party SSE clients driven from a test: a small script per client
//! library (`tests/clients/node/`, `tests/clients/python/`) that connects
//! to a URL, reconnects by itself (or through the library's documented
//! loop) and prints every event it dispatches as one JSON line, and
//! [`Client`], which runs one and reads what it printed.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value;

/// How long any wait on a client may take before it counts as hung
/// (Chromium's start is the slowest step).
pub const CLIENT_GUARD: Duration = Duration::from_secs(30);

/// A client library and how to run its script.
pub struct Library {
    pub name: &'static str,
    pub runtime: Runtime,
    pub script: &'static str,
    /// Whether the library exposes `retry` on the event that carried it.
    pub exposes_retry: bool,
}

#[derive(Clone, Copy)]
pub enum Runtime {
    /// A script in `tests/clients/node`, needing this package installed.
    Node { package: &'static str },
    /// A script in `tests/clients/python`, run by the virtualenv's Python.
    Python,
}

/// One event as a client script printed it.
#[derive(Clone, Debug)]
pub struct Received {
    pub kind: String,
    pub data: String,
    pub id: Option<String>,
    pub retry: Option<u64>,
}

impl Received {
    pub fn describe(&self) -> String {
        format!(
            "{} id={:?} retry={:?} data={:?}",
            self.kind, self.id, self.retry, self.data
        )
    }
}

/// A running client script and what it printed so far.
pub struct Client {
    pub name: &'static str,
    child: Child,
    /// Closing it ends the script.
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub events: Vec<Received>,
    pub notes: usize,
    /// Every line printed, events and notes, in order.
    printed: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Client {
    pub fn spawn(library: &Library, url: &str) -> Client {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = match library.runtime {
            Runtime::Node { package } => {
                let dir = root.join("tests/clients/node");
                assert!(
                    dir.join("node_modules").join(package).is_dir(),
                    "{} has no node_modules/{package}: run `npm ci` there first (.ci/run does)",
                    dir.display()
                );
                let mut command = Command::new("node");
                command.arg(library.script).current_dir(dir);
                command
            }
            Runtime::Python => {
                let python = venv().join("bin/python");
                assert!(
                    python.is_file(),
                    "no virtualenv at {} for the Python clients: create it with\n  \
                     python3 -m venv target/venv && \
                     target/venv/bin/pip install -r tests/clients/python/requirements.txt\n\
                     (.ci/run does), or name one in SSE_HUB_TEST_VENV",
                    venv().display()
                );
                let mut command = Command::new(python);
                // No __pycache__ left in the source tree.
                command
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .arg("-u")
                    .arg(library.script)
                    .current_dir(root.join("tests/clients/python"));
                command
            }
        };
        let mut child = command
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {} client: {e}", library.name));
        let (sender, lines) = crossbeam_channel::unbounded();
        let stdout = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut pipe = child.stderr.take().expect("stderr is piped");
        thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Client {
            name: library.name,
            stdin: child.stdin.take(),
            child,
            lines,
            events: Vec::new(),
            notes: 0,
            printed: Vec::new(),
            stderr,
        }
    }

    /// Takes in what the script printed so far.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.take(line);
        }
    }

    fn take(&mut self, line: String) {
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {line}", self.name));
        if let Some(kind) = value["type"].as_str() {
            self.events.push(Received {
                kind: kind.to_owned(),
                data: value["data"].as_str().unwrap_or_default().to_owned(),
                id: value["id"].as_str().map(str::to_owned),
                retry: value["retry"].as_u64(),
            });
        } else {
            self.notes += 1;
        }
        self.printed.push(line);
    }

    /// Waits until `ok` holds for what the script printed, or panics after
    /// [`CLIENT_GUARD`].
    pub fn wait_for(&mut self, what: &str, ok: impl Fn(&Client) -> bool) {
        let deadline = Instant::now() + CLIENT_GUARD;
        self.drain();
        while !ok(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.take(line),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no {what} within {CLIENT_GUARD:?}\n{}",
                    self.name,
                    self.transcript()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: the client exited while waiting for {what} ({:?})\n{}",
                    self.name,
                    self.child.try_wait(),
                    self.transcript()
                ),
            }
        }
    }

    /// Waits until the client has opened `n` streams (reconnecting by
    /// itself).
    pub fn wait_for_connections(&mut self, n: usize) {
        self.wait_for(&format!("`connection` event number {n}"), |c| {
            c.connections() >= n
        });
    }

    /// Waits for a message with this data.
    pub fn wait_for_data(&mut self, data: &str) {
        self.wait_for(&format!("message {data:?}"), |c| {
            c.events.iter().any(|e| e.data == data)
        });
    }

    pub fn connections(&self) -> usize {
        self.events
            .iter()
            .filter(|e| e.kind == "connection")
            .count()
    }

    /// Where in `events` the `n`th `connection` event is (from 1).
    pub fn connection_index(&self, n: usize) -> usize {
        self.events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == "connection")
            .nth(n - 1)
            .map(|(i, _)| i)
            .expect("that many connection events")
    }

    pub fn connection(&self, n: usize) -> &Received {
        &self.events[self.connection_index(n)]
    }

    /// What the script printed, and its stderr, for a failure message.
    pub fn transcript(&self) -> String {
        let mut text = format!("what the {} client printed:\n", self.name);
        for line in &self.printed {
            text.push_str(&format!("  {line}\n"));
        }
        let stderr = self.stderr.lock().unwrap();
        if !stderr.trim().is_empty() {
            text.push_str("its stderr:\n");
            for line in stderr
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                text.push_str(&format!("  {line}\n"));
            }
        }
        text
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // The script ends when its stdin closes (Chromium closed first).
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The virtualenv with the Python clients' packages.
pub fn venv() -> PathBuf {
    std::env::var_os("SSE_HUB_TEST_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv"),
        PathBuf::from,
    )
}
