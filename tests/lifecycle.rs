//! Start-up and shutdown of the real process.

mod common;

use std::process::Command;
use std::thread;

use common::Hub;

#[test]
fn sigterm_ends_every_stream_properly_and_exits_zero() {
    let mut hub = Hub::start(&[]);
    let clients: Vec<_> = (0..50).map(|_| hub.subscribe_ready("/events").0).collect();
    hub.wait_for_clients(50);
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            thread::spawn(move || {
                client.read_to_end();
                client.ended_cleanly()
            })
        })
        .collect();

    let status = hub.terminate();
    assert_eq!(status.code(), Some(0), "log:\n{}", hub.log());
    for reader in readers {
        assert!(
            reader.join().unwrap(),
            "a stream did not end with its last chunk"
        );
    }
    let log = hub.log();
    assert!(log.contains("closing 50 streams"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn sigint_stops_it_too() {
    let mut hub = Hub::start(&[]);
    let (mut client, _) = hub.subscribe_ready("/events");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(hub.pid() as i32, libc::SIGINT) };
    assert_eq!(hub.wait().code(), Some(0), "log:\n{}", hub.log());
    client.read_to_end();
    assert!(
        client.ended_cleanly(),
        "the stream did not end with its last chunk"
    );
}

/// Each connect is logged; 600 of them overflow a 64 KiB pipe. A stderr
/// nobody reads must cost log lines, never the hub.
#[test]
fn a_stalled_log_reader_stalls_nothing() {
    const CLIENTS: usize = 600;
    let hub = Hub::start_with_unread_logs(&[]);
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| hub.subscribe_ready("/events").0)
        .collect();
    hub.wait_for_clients(CLIENTS as u64);
    let (_, reached) = hub.publish(serde_json::json!({"message": "still flowing"}));
    assert_eq!(reached, CLIENTS as u64);
    for client in &mut clients {
        assert_eq!(client.next_event().data, "still flowing");
    }
}

#[test]
fn the_listening_line_names_the_real_port() {
    // The helper takes the address from the `listening on http://...` line:
    // a real port, where the hub answers.
    let hub = Hub::start(&[]);
    assert_ne!(hub.addr.port(), 0);
    assert_eq!(hub.get("/healthz").text(), "ok");
}

#[test]
fn options_also_come_from_the_environment() {
    let output = Command::new(env!("CARGO_BIN_EXE_sse-hub"))
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--listen",
        "--heartbeat",
        "--retry",
        "--history",
        "--queue",
        "--max-clients",
        "--max-body",
        "--publish-token",
        "--cors-origin",
        "--static",
        "--compress",
        "--jwt-secret",
        "--jwt-public-key",
        "--private",
    ] {
        assert!(help.contains(option), "--help lacks {option}");
        let variable = format!("SSE_HUB_{}", option[2..].replace('-', "_").to_uppercase());
        assert!(help.contains(&variable), "--help lacks {variable}");
    }

    let hub = Hub::start_with_env("127.0.0.1:0", &[], &[("SSE_HUB_RETRY", "1234")]);
    let mut client = hub.subscribe("/events");
    client.next_event();
    assert_eq!(client.retry, Some(1234));
}

#[test]
fn a_bad_option_is_refused_with_a_reason() {
    for args in [
        &["--queue", "0"][..],
        &["--listen", "not-an-address"],
        &["--heartbeat", "-1"],
        &["--static", "/no/such/folder"],
        &["--cors-origin", "a\u{7}b"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_sse-hub"))
            .args(args)
            .output()
            .expect("run sse-hub");
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.trim().is_empty(), "{args:?}: no reason given");
    }
}

/// The binary starts itself once more with glibc's per-thread caches, extra
/// arenas and stack cache off (src/cli/malloc.rs): the same process, with
/// the settings in its environment. Another tunable the operator set is
/// kept, and a setting the operator chose wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_binary_runs_with_its_allocator_settings_unless_told_otherwise() {
    const OURS: &str =
        "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=1:glibc.pthread.stack_cache_size=0";
    const THEIRS: &str = "glibc.malloc.tcache_count=7:glibc.pthread.stack_cache_size=4194304:\
                          glibc.malloc.arena_max=4";
    let mut cases = vec![
        (
            Some("glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536"),
            "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536:\
             glibc.malloc.tcache_count=0:glibc.pthread.stack_cache_size=0"
                .to_owned(),
        ),
        (Some(THEIRS), THEIRS.to_owned()),
    ];
    // Without a value of its own, the hub inherits this process's, if any.
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        cases.push((None, OURS.to_owned()));
    }
    for (given, expected) in cases {
        let env: Vec<(&str, &str)> = given.map(|g| ("GLIBC_TUNABLES", g)).into_iter().collect();
        let hub = Hub::start_with_env("127.0.0.1:0", &[], &env);
        assert_eq!(hub.get("/healthz").text(), "ok");
        // The child's pid: the hub that answered is the process started.
        let environ = std::fs::read(format!("/proc/{}/environ", hub.pid())).unwrap();
        assert_eq!(tunables(&environ), [expected], "given {given:?}");
        // It keeps its name through the second start, which runs
        // /proc/self/exe (the kernel would call it `exe`).
        assert_eq!(process_name(hub.pid()), "sse-hub", "given {given:?}");
    }
}

/// The mark of a second start stops a third: a hub that finds it runs as
/// it is, with no settings added.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_binary_starts_itself_again_once_at_most() {
    let given = "glibc.malloc.mmap_threshold=65536";
    let hub = Hub::start_with_env(
        "127.0.0.1:0",
        &[],
        &[
            ("GLIBC_TUNABLES", given),
            ("SSE_HUB_RESTARTED_WITH_TUNABLES", "hub-of-tests"),
        ],
    );
    assert_eq!(hub.get("/healthz").text(), "ok");
    let environ = std::fs::read(format!("/proc/{}/environ", hub.pid())).unwrap();
    assert_eq!(tunables(&environ), [given]);
    // The mark's value is the name the first start had, and the hub takes it.
    assert_eq!(process_name(hub.pid()), "hub-of-tests");
}

/// A process's name as `ps`, `pgrep -x` and `killall` see it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .expect("read comm")
        .trim_end()
        .to_owned()
}

/// The values of `GLIBC_TUNABLES` in a `/proc/PID/environ`. glibc (2.36
/// here) ends each tunable it reads with a NUL written over the `:` in the
/// process's own copy of its environment, so the pieces of one value follow
/// one another as separate strings; they are joined again here.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tunables(environ: &[u8]) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    let mut inside = false;
    for entry in environ.split(|&b| b == 0) {
        let entry = String::from_utf8_lossy(entry);
        if let Some(value) = entry.strip_prefix("GLIBC_TUNABLES=") {
            values.push(value.to_owned());
            inside = true;
        } else if inside && entry.starts_with("glibc.") {
            if let Some(value) = values.last_mut() {
                value.push(':');
                value.push_str(&entry);
            }
        } else {
            inside = false;
        }
    }
    values
}
