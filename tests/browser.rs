//! The web client and `/sse-hub.js` in a real browser: each test runs a
//! script of `tests/browser/` under Node, which starts this crate's
//! `sse-hub` binary itself and drives Debian's headless Chromium through
//! `playwright-core`.
//!
//! Ignored by a plain `cargo test`, which needs neither Node nor Chromium.
//! `.ci/run` installs both (`apt-get install chromium`, `npm ci` in
//! `tests/browser`) and runs `cargo test -- --include-ignored`.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "needs Chromium and npm packages in tests/browser: run .ci/run"]
fn the_web_client_works_in_headless_chromium() {
    run_suite("run.mjs");
}

#[test]
#[ignore = "needs Chromium and npm packages in tests/browser: run .ci/run"]
fn tabs_share_one_stream_through_shared_event_source_in_headless_chromium() {
    run_suite("shared.mjs");
}

#[test]
#[ignore = "needs Chromium and npm packages in tests/browser: run .ci/run"]
fn pages_of_another_site_cannot_publish_in_headless_chromium() {
    run_suite("cross_site.mjs");
}

#[test]
#[ignore = "needs Chromium and npm packages in tests/browser: run .ci/run"]
fn the_web_client_shows_presence_in_headless_chromium() {
    run_suite("presence.mjs");
}

/// HTTPS on the hub, and HTTP/2 through nginx, with a test CA made here:
/// the script gets the server's certificate and key, and Node trusts the CA.
#[cfg(feature = "tls")]
#[test]
#[ignore = "needs Chromium, nginx and npm packages in tests/browser: run .ci/run"]
fn https_and_http2_through_nginx_in_headless_chromium() {
    let ca = common::tls::TestCa::new("browser");
    let (cert, key, _) = ca.issue("server", "localhost");
    let ca_file = ca.ca_file();
    run_suite_with(
        "tls.mjs",
        &[
            ("SSE_HUB_TEST_CERT", cert.as_os_str()),
            ("SSE_HUB_TEST_KEY", key.as_os_str()),
            ("NODE_EXTRA_CA_CERTS", ca_file.as_os_str()),
        ],
    );
}

/// Runs one script of the browser suite with Node's test runner; panics if
/// any of its tests fails.
fn run_suite(script: &str) {
    run_suite_with(script, &[]);
}

/// [`run_suite`], with more environment for the script.
fn run_suite_with(script: &str, env: &[(&str, &std::ffi::OsStr)]) {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        suite.join("node_modules/playwright-core").is_dir(),
        "{} has no node_modules/playwright-core: run `npm ci` there first (.ci/run does)",
        suite.display()
    );
    // The child inherits stdout and stderr, so its report streams as it runs.
    let status = Command::new("node")
        .arg("--test-reporter=spec")
        .arg("--test")
        .arg(script)
        .current_dir(&suite)
        .env("SSE_HUB_BIN", env!("CARGO_BIN_EXE_sse-hub"))
        .envs(env.iter().copied())
        .status()
        .unwrap_or_else(|e| panic!("cannot run node (is Node.js 20 or later installed?): {e}"));
    assert!(
        status.success(),
        "the browser suite {script} failed ({status}); its report is above"
    );
}
