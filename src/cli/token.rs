//! `sse-hub token`: a JSON Web Token for testing private channels without
//! writing code.

use std::process::ExitCode;

use sse_hub::access::{Grants, mint_hs256};

use super::args::{TokenArgs, in_flag_terms};

/// `sse-hub token`: prints a token signed with `SSE_HUB_JWT_SECRET`. The
/// secret is read from the environment only, never from an argument that
/// `ps` would show.
pub(crate) fn print_token(args: &TokenArgs) -> ExitCode {
    let secret = match std::env::var("SSE_HUB_JWT_SECRET") {
        Ok(secret) if !secret.is_empty() => secret,
        _ => {
            eprintln!(
                "sse-hub token: SSE_HUB_JWT_SECRET is not set: set it to the secret the hub \
                 runs with (--jwt-secret), such as `export SSE_HUB_JWT_SECRET=\"$(openssl rand -hex 32)\"`"
            );
            return ExitCode::FAILURE;
        }
    };
    if args.subscribe.is_empty() && args.publish.is_empty() {
        eprintln!(
            "sse-hub token: this token allows nothing beyond what needs no token; \
             add --subscribe or --publish"
        );
    }
    let grants = Grants {
        subscribe: args.subscribe.clone(),
        publish: args.publish.clone(),
    };
    match mint_hs256(secret.as_bytes(), &grants, args.ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sse-hub token: {}", in_flag_terms(&e));
            ExitCode::FAILURE
        }
    }
}
