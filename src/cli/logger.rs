//! The binary's logs: `env_logger` formatting, written to stderr by a
//! thread of their own so that a stderr nobody reads never stalls the hub.

use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use env_logger::{Target, WriteStyle};

/// Log lines waiting for stderr at most; past that they are dropped.
const LOG_BACKLOG: usize = 8192;

/// Sends logs (`RUST_LOG`, default `info`) to stderr from a thread of their
/// own. The hub logs every connect and disconnect; if it wrote to stderr
/// itself, a stderr nobody reads (a full pipe, a stalled log collector)
/// would stall the hub and every stream with it. Lines that find the backlog
/// full are dropped and counted instead.
pub(crate) fn start_logging() -> LogQueue {
    let (lines, to_write) = crossbeam_channel::bounded(LOG_BACKLOG);
    let dropped = Arc::new(AtomicU64::new(0));
    let queue = LogQueue {
        lines,
        dropped: Arc::clone(&dropped),
    };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    builder
        .format_timestamp_millis()
        .target(Target::Pipe(Box::new(queue.clone())));
    if std::env::var_os("RUST_LOG_STYLE").is_none() {
        let colours = io::stderr().is_terminal();
        builder.write_style(if colours {
            WriteStyle::Always
        } else {
            WriteStyle::Never
        });
    }
    builder.init();
    let writer = thread::Builder::new()
        .name("log".into())
        .spawn(move || write_logs(&to_write, &dropped));
    if let Err(e) = writer {
        eprintln!("cannot start the log thread, logs are lost: {e}");
    }
    queue
}

fn write_logs(lines: &Receiver<Line>, dropped: &AtomicU64) {
    let mut stderr = io::stderr();
    for line in lines {
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(stderr, "[{lost} log lines dropped: stderr did not keep up]");
        }
        match line {
            Line::Text(text) => {
                let _ = stderr.write_all(&text);
            }
            Line::Flushed(done) => {
                let _ = done.send(());
            }
        }
    }
}

enum Line {
    Text(Vec<u8>),
    /// Everything before this is written; answer on the channel.
    Flushed(Sender<()>),
}

/// env_logger's target: hands each formatted line to the log thread.
#[derive(Clone)]
pub(crate) struct LogQueue {
    lines: Sender<Line>,
    dropped: Arc<AtomicU64>,
}

impl LogQueue {
    /// Writes `text` to stderr whatever the log level.
    pub(crate) fn line(&self, text: String) {
        if self.lines.try_send(Line::Text(text.into_bytes())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits (briefly) until every line logged so far is written.
    pub(crate) fn flush(&self) {
        let (done, written) = crossbeam_channel::bounded(1);
        let wait = Duration::from_secs(1);
        if self.lines.send_timeout(Line::Flushed(done), wait).is_ok() {
            let _ = written.recv_timeout(wait);
        }
    }
}

impl Write for LogQueue {
    fn write(&mut self, text: &[u8]) -> io::Result<usize> {
        if self.lines.try_send(Line::Text(text.to_vec())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(text.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
