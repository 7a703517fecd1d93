//! The `sse-hub` binary: read the command line (every option also reads an
//! `SSE_HUB_*` environment variable), start itself once more with the glibc
//! settings that keep its memory flat (`cli/malloc.rs`), start the logs and
//! the server, stop it cleanly on SIGINT or SIGTERM, and read the TLS
//! certificate again on SIGHUP. `sse-hub token ...` instead prints a JSON
//! Web Token signed with `SSE_HUB_JWT_SECRET`, for testing private channels
//! without writing code.

mod cli;

use std::process::ExitCode;
use std::thread;

use clap::Parser;
use log::{error, info, warn};
use sse_hub::Server;

use cli::args::{Args, Command, exit_on_bad_arguments, in_flag_terms};
use cli::logger::start_logging;
use cli::malloc::{SETTINGS, restart_with_settings};
use cli::token::print_token;

fn main() -> ExitCode {
    let args = Args::try_parse().unwrap_or_else(|e| exit_on_bad_arguments(e));
    if let Some(Command::Token(token)) = &args.command {
        return print_token(token);
    }
    let restart_failed = restart_with_settings();
    let logs = start_logging();
    if let Some(e) = restart_failed {
        warn!(
            "cannot start again with GLIBC_TUNABLES={}: {e}; \
             memory may creep up through long churn",
            SETTINGS.join(":")
        );
    }
    std::panic::set_hook(Box::new(|panic| {
        let thread = thread::current();
        error!(
            "thread `{}` panicked: {panic}",
            thread.name().unwrap_or("unnamed")
        );
    }));

    let outcome = match Server::bind(args.into_config()) {
        Ok(server) => {
            // Scripts that start the hub on port 0 read the port from this
            // line, so it is printed whatever the log level.
            logs.line(format!(
                "listening on {}://{}\n",
                server.scheme(),
                server.local_addr()
            ));
            if let Err(e) = handle_signals(&server) {
                warn!("cannot catch SIGINT/SIGTERM/SIGHUP, stop with SIGKILL: {e}");
            }
            server.run()
        }
        Err(e) => Err(e),
    };
    let code = match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{}", in_flag_terms(&e));
            ExitCode::FAILURE
        }
    };
    logs.flush();
    code
}

/// SIGINT and SIGTERM stop the server; SIGHUP reads its TLS certificate and
/// key again (certbot's deploy hook sends it after a renewal), and a pair
/// that fails to load is logged while the old one stays. One thread waits
/// for them.
fn handle_signals(server: &Server) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let stopper = server.stopper();
    let reloader = server.tls_reloader();
    thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            for signal in signals.forever() {
                match (signal, &reloader) {
                    (SIGHUP, Some(reloader)) => {
                        if let Err(e) = reloader.reload() {
                            error!("TLS certificate not reloaded, keeping the old one: {e}");
                        }
                    }
                    (SIGHUP, None) => info!("SIGHUP: no TLS certificate to reload"),
                    _ => {
                        stopper.stop();
                        return;
                    }
                }
            }
        })?;
    Ok(())
}
