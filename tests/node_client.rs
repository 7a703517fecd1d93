//! Resume checked with a client that is not ours: `tests/node/resume.mjs`
//! drives the real binary with the `eventsource` npm package through a
//! connection cut, a server restart and a bad `Last-Event-ID`, and reads a
//! gzip stream (`--compress`) through a cut too.
//!
//! Needs Node 20+ and `npm ci` in `tests/node` (`.ci/run` does it), hence
//! ignored by a plain `cargo test`:
//!
//! ```sh
//! (cd tests/node && npm ci) && cargo test --test node_client -- --include-ignored
//! ```

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The script bounds itself at 60 s; this only catches a Node that hangs.
const GUARD: Duration = Duration::from_secs(90);

#[test]
#[ignore = "needs npm packages in tests/node: run .ci/run"]
fn eventsource_package_resumes_without_loss() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules/eventsource").is_dir(),
        "{} has no node_modules/eventsource: run `npm ci` there first (.ci/run does)",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg("resume.mjs")
        .current_dir(&dir)
        .env("SSE_HUB_BIN", env!("CARGO_BIN_EXE_sse-hub"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` (Node 20 or newer is needed): {e}"));
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));

    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if start.elapsed() > GUARD {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().expect("read node's stdout");
    let stderr = stderr.join().expect("read node's stderr");
    // Shown by `cargo test` on failure, or always with `--nocapture`.
    print!("{stdout}");
    eprint!("{stderr}");

    let status = status.unwrap_or_else(|| panic!("node tests/node/resume.mjs ran past {GUARD:?}"));
    assert!(
        status.success(),
        "node tests/node/resume.mjs failed ({status}):\n{}",
        stderr.trim()
    );
}

/// Reads a pipe to its end on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
