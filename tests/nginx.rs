//! The README's nginx recipe, with a real nginx and a real client: while
//! the hub behind it restarts, the `eventsource` npm client gets nginx's
//! fallback stream (`200`, `retry:`) instead of a `502`, so it keeps
//! reconnecting by itself, and when the hub is back it resumes there (a
//! `gap`, since the hub's history was lost with it) and gets what is
//! published next.
//!
//! The configuration is the README's own, read from its "Behind a reverse
//! proxy" section, with the hub's address put in: what the README says is
//! what is tested.
//!
//! Ignored by a plain `cargo test`: it needs nginx and Node packages.
//! `.ci/run` installs them; by hand:
//!
//! ```sh
//! apt-get install -y nginx
//! (cd tests/clients/node && npm ci)
//! cargo test --test nginx -- --include-ignored
//! ```

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::clients::{Client, Library, Runtime};
use common::{GUARD, Hub, free_port};

/// The hub's `retry:`, and the fallback's: short, so the test is quick.
const RETRY_MS: &str = "300";

#[test]
#[ignore = "needs nginx and Node packages in tests/clients/node: run .ci/run"]
fn browsers_keep_reconnecting_through_nginx_while_the_hub_restarts() {
    let hub_port = free_port();
    let listen = format!("127.0.0.1:{hub_port}");
    let args = ["--retry", RETRY_MS];
    let mut hub = Hub::start_with_env(&listen, &args, &[]);
    let nginx = Nginx::start(hub_port);
    let mut client = Client::spawn(
        &Library {
            name: "eventsource (npm) through nginx",
            runtime: Runtime::Node {
                package: "eventsource",
            },
            script: "eventsource.mjs",
            exposes_retry: false,
        },
        &nginx.url("/events"),
    );
    client.wait_for_connections(1);
    hub.publish_text("before the restart");
    client.wait_for_data("before the restart");

    // The hub goes away: nginx answers for it, and the client keeps
    // coming back, each time to nginx's fallback.
    assert_eq!(hub.terminate().code(), Some(0));
    nginx.wait_for_fallbacks(2);

    // Back on the same port, with an empty history: the client resumes
    // there by itself and is told what it may have missed.
    let hub = Hub::start_with_env(&listen, &args, &[]);
    client.wait_for_connections(2);
    client.wait_for("`gap` after the restart", |c| {
        c.events.iter().any(|e| e.kind == "gap")
    });
    hub.publish_text("after the restart");
    client.wait_for_data("after the restart");
    let messages: Vec<&str> = client
        .events
        .iter()
        .filter(|e| e.kind == "message")
        .map(|e| e.data.as_str())
        .collect();
    assert_eq!(
        messages,
        ["before the restart", "after the restart"],
        "the fallback must not show up as a message\n{}",
        client.transcript()
    );
}

/// An nginx in the foreground, in a folder of its own.
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    fn start(hub_port: u16) -> Nginx {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("no nginx: apt-get install -y nginx (.ci/run does)"));
        let dir = std::env::temp_dir().join(format!("sse-hub-nginx-{}", std::process::id()));
        fs::create_dir_all(dir.join("logs")).expect("a folder for nginx");
        let port = free_port();
        let locations = readme_recipe().replace("127.0.0.1:3000", &format!("127.0.0.1:{hub_port}"));
        let conf = format!(
            "daemon off;\n\
             pid {dir}/nginx.pid;\n\
             error_log {dir}/logs/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             access_log {dir}/logs/access.log;\n\
             client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;\n\
             fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi;\n\
             scgi_temp_path {dir}/scgi;\n\
             server {{\n listen 127.0.0.1:{port};\n{locations}\n}}\n}}\n",
            dir = dir.display()
        );
        fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < GUARD, "nginx did not start listening");
            thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, dir, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until nginx has answered `n` stream requests while the hub was
    /// down: the ones its error log records as refused upstream.
    fn wait_for_fallbacks(&self, n: usize) {
        let started = Instant::now();
        loop {
            let log = fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default();
            let refused = log.matches("Connection refused").count();
            if refused >= n {
                return;
            }
            assert!(
                started.elapsed() < GUARD,
                "the client came back {refused} times while the hub was down, not {n}:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The `location` blocks of the README's nginx recipe (the first `nginx`
/// block of "Behind a reverse proxy").
fn readme_recipe() -> String {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split_once("### Behind a reverse proxy")
        .expect("the README's reverse proxy section")
        .1;
    let block = section
        .split_once("```nginx\n")
        .expect("an nginx block in that section")
        .1;
    block
        .split_once("```")
        .expect("the end of the nginx block")
        .0
        .to_owned()
}
