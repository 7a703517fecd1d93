//! The command line: what a mistake in a flag or an `SSE_HUB_*` variable
//! says, and that scripts can always find the port.

mod common;

use std::net::TcpListener;
use std::process::Output;

use common::{Hub, run_to_exit};

/// Runs the binary with `args` and `env` to its end (each case here makes
/// it stop at once), with what it printed on stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    let output = run_to_exit(args, env);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

fn assert_refused(args: &[&str], env: &[(&str, &str)], says: &[&str]) {
    let (output, stderr) = run(args, env);
    assert!(!output.status.success(), "{args:?} {env:?} was accepted");
    for part in says {
        assert!(
            stderr.contains(part),
            "{args:?} {env:?}: {stderr:?} lacks {part:?}"
        );
    }
}

#[test]
fn a_negative_number_is_a_bad_value_not_an_unknown_flag() {
    assert_refused(
        &["--heartbeat", "-1"],
        &[],
        &["'-1'", "--heartbeat", "whole number"],
    );
}

#[test]
fn a_bad_environment_variable_is_named_as_such() {
    assert_refused(
        &[],
        &[("SSE_HUB_QUEUE", "lots")],
        &["SSE_HUB_QUEUE", "'lots'"],
    );
    // The same value on the command line is named as the flag.
    let (_, stderr) = run(&["--queue", "lots"], &[]);
    assert!(
        stderr.contains("--queue") && !stderr.contains("SSE_HUB_QUEUE"),
        "{stderr}"
    );
}

#[test]
fn out_of_range_settings_are_refused_by_their_flag() {
    for (args, flag) in [
        (["--max-clients", "0"], "--max-clients"),
        (["--queue", "0"], "--queue"),
        (
            ["--write-timeout", "18446744073709551615"],
            "--write-timeout",
        ),
        (["--body-timeout", "99999999999"], "--body-timeout"),
        (["--heartbeat", "100000000"], "--heartbeat"),
    ] {
        let mut with_port = vec!["--listen", "127.0.0.1:0"];
        with_port.extend(args);
        assert_refused(&with_port, &[], &[flag, "invalid value"]);
    }
}

#[test]
fn an_address_in_use_says_what_to_do() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_refused(
        &["--listen", &addr],
        &[],
        &["cannot listen on", "another sse-hub", "port 0"],
    );
}

#[test]
fn the_listening_line_is_printed_at_any_log_level() {
    // `Hub` waits for the line and fails if it never comes.
    let hub = Hub::start_with_env("127.0.0.1:0", &[], &[("RUST_LOG", "error")]);
    assert!(
        hub.log()
            .contains(&format!("listening on http://{}", hub.addr))
    );
}

/// Under a hard limit of 1,024 descriptors (common in containers) the hub
/// starts, with fewer streams, and its warning names the limit and how to
/// raise it, never a flag that was not passed.
#[test]
fn a_low_descriptor_limit_lowers_max_clients_and_says_which_limit() {
    let hub = Hub::start_with_fd_limit(&[], 1024);
    assert_eq!(hub.get("/healthz").status, 200);
    let log = hub.log();
    assert!(
        log.contains("max_clients 10000 lowered to")
            && log.contains("open files (ulimit -n) is 1024")
            && log.contains("raise the hard limit"),
        "{log}"
    );
    assert!(!log.contains("invalid value"), "{log}");
}
