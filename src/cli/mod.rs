//! What only the binary needs: its arguments (`args.rs`), its logs
//! (`logger.rs`) and the token subcommand (`token.rs`).

pub(crate) mod args;
pub(crate) mod logger;
pub(crate) mod token;
