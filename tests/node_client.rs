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

mod common;

use std::time::Duration;

/// The script bounds itself at 60 s; this only catches a Node that hangs.
const GUARD: Duration = Duration::from_secs(90);

#[test]
#[ignore = "needs npm packages in tests/node: run .ci/run"]
fn eventsource_package_resumes_without_loss() {
    let output = common::run_node_script("resume.mjs", &[], GUARD);
    // Shown by `cargo test` on failure, or always with `--nocapture`.
    print!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "node tests/node/resume.mjs failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
}
