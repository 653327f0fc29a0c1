//! sagetrain: submit and follow Amazon SageMaker training jobs for a U-Net image.
//!
//! `main.rs` parses the command line and calls [`run`], which returns the exit code.

pub mod aws;
pub mod cli;
pub mod commands;
pub mod data;
pub mod error;
pub mod jobs;
pub mod lookups;
pub mod output;
pub mod secrets;
pub mod settings;
pub mod spec;

use cli::{Cli, Command};
use commands::Context;

/// Run a parsed command line and return the process exit code.
pub fn run(cli: Cli) -> i32 {
    output::init_logging(cli.global.verbose);
    let ctx = Context::from_process(cli.global.clone());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            ctx.ui.error(&error::Error::internal(format!(
                "cannot start the async runtime: {e}"
            )));
            return 1;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Train(args) => commands::train::run(&ctx, args).await,
            Command::Config(args) => commands::config::run(&ctx, args),
            Command::Data(cmd) => commands::data::run(&ctx, cmd).await,
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            ctx.ui.error(&e);
            e.exit_code()
        }
    }
}
