//! The `sse-hub` binary: read the command line (every option also reads an
//! `SSE_HUB_*` environment variable), start the logs and the server, stop it
//! cleanly on SIGINT or SIGTERM. `sse-hub token ...` instead prints a JSON
//! Web Token signed with `SSE_HUB_JWT_SECRET`, for testing private
//! channels without writing code.

mod cli;

use std::process::ExitCode;
use std::thread;

use clap::Parser;
use log::{error, warn};
use sse_hub::Server;

use cli::args::{Args, Command, exit_on_bad_arguments, in_flag_terms};
use cli::logger::start_logging;
use cli::token::print_token;

fn main() -> ExitCode {
    let args = Args::try_parse().unwrap_or_else(|e| exit_on_bad_arguments(e));
    if let Some(Command::Token(token)) = &args.command {
        return print_token(token);
    }
    let logs = start_logging();
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
            logs.line(format!("listening on http://{}\n", server.local_addr()));
            let stopper = server.stopper();
            if let Err(e) = ctrlc::set_handler(move || stopper.stop()) {
                warn!("cannot catch SIGINT/SIGTERM, stop with SIGKILL: {e}");
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
