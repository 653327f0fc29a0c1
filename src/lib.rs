//! sagetrain: submit and follow Amazon SageMaker training jobs for a U-Net image.
//!
//! `main.rs` parses the command line and calls [`run`], which returns the exit code.

pub mod aws;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod doctor;
pub mod error;
pub mod follow;
pub mod fsutil;
pub mod job;
pub mod secrets;
pub mod ui;

use cli::{Cli, Command};
use commands::Context;

/// Run a parsed command line and return the process exit code.
pub fn run(cli: Cli) -> i32 {
    secrets::register_env(&|k| std::env::var(k).ok());
    ui::init_logging(cli.global.verbose);
    let ctx = Context::from_process(cli.global.clone());
    let limits = match aws::timeouts::Timeouts::layer(&cli.net, &*ctx.env) {
        Ok(t) => t,
        Err(e) => {
            ctx.ui.error(&e);
            return e.exit_code();
        }
    };
    aws::timeouts::install(limits.clone());
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
        let command = async {
            match &cli.command {
                Command::Train(args) => commands::train::run(&ctx, args).await,
                Command::Config(args) => commands::config::run(&ctx, args),
                Command::Doctor(args) => commands::doctor::run(&ctx, args).await,
                Command::Init(args) => commands::init::run(&ctx, args).await,
                Command::Wait(args) => commands::wait::run(&ctx, args).await,
                Command::Logs(args) => commands::logs::run(&ctx, args).await,
                Command::Status(args) => commands::status::run(&ctx, args).await,
                Command::List(args) => commands::list::run(&ctx, args).await,
                Command::Stop(args) => commands::stop::run(&ctx, args).await,
                Command::Download(args) => commands::download::run(&ctx, args).await,
                Command::Data(cmd) => commands::data::run(&ctx, cmd).await,
                Command::Pool(cmd) => commands::pool::run(&ctx, cmd).await,
            }
        };
        match &limits.deadline {
            None => command.await,
            Some(d) => tokio::time::timeout(d.value, command)
                .await
                .unwrap_or_else(|_| Err(aws::timeouts::deadline_error(d))),
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
