//! What only the binary needs: its arguments (`args.rs`), its logs
//! (`logger.rs`), the token subcommand (`token.rs`) and the allocator
//! settings it runs with (`malloc.rs`).

pub(crate) mod args;
pub(crate) mod logger;
pub(crate) mod malloc;
pub(crate) mod token;
