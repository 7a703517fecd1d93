//! A real `redis-server` for the cluster tests: started on a free port of
//! 127.0.0.1 in a temporary folder of its own, without persistence unless
//! a test asks for AOF, killed when dropped.
//!
//! Debian's package `redis-server` provides it (`.ci/run` installs it); a
//! machine without it fails the test with the command that installs it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::GUARD;

/// A running `redis-server`.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts one on a free port, in a new temporary folder.
    pub fn start() -> Redis {
        Redis::start_on(super::free_port())
    }

    /// Starts one on `port`, in a new temporary folder.
    pub fn start_on(port: u16) -> Redis {
        let dir = std::env::temp_dir().join(format!("sse-hub-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the folder for redis-server");
        let mut redis = Redis {
            child: None,
            port,
            dir,
        };
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port; waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): the cluster tests need a real Redis; \
                     install it with `apt-get install -y redis-server` (.ci/run does)"
                )
            });
        self.child = Some(child);
        let start = Instant::now();
        while self.try_command(&["PING"]).as_deref() != Some("+PONG") {
            assert!(
                start.elapsed() < GUARD,
                "redis-server did not answer on port {}",
                self.port
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one command; returns the first line of the reply.
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|| panic!("redis-server did not answer {args:?}"))
    }

    fn try_command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(self.addr()).ok()?;
        stream.set_read_timeout(Some(GUARD)).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line.starts_with('$') {
            // A bulk string: its text is on the next line.
            line.clear();
            reader.read_line(&mut line).ok()?;
        }
        Some(line.trim_end().to_owned()).filter(|l| !l.is_empty())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
