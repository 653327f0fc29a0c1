//! sagetrain: submit and follow Amazon SageMaker training jobs for a U-Net image.
//!
//! `main.rs` parses the command line and calls [`run`], which returns the exit code.

mod aws;
pub mod cli;
mod commands;
mod config;
mod data;
mod doctor;
mod error;
mod follow;
mod fsutil;
mod image;
mod job;
mod metrics;
mod refs;
mod secrets;
mod signals;
#[cfg(test)]
mod testing;
mod ui;

/// Every declared group of settings (connection, `train`, `tune`, time limits, polling,
/// uploads), for the tests that go over every one of them.
pub use commands::config::groups;
/// The execution role's derived policies, for the tests that check them with parliament.
pub use job::role_policy;
/// The declared `train` settings, for the tests that go over every one of them.
pub use job::settings;

use cli::{Cli, Command};
use commands::Context;

/// A signal that no stage handled (see [`signals`]): end the command, saying what to check.
fn interrupted(command: &Command, sig: signals::Signal) -> error::Error {
    let hint = match command {
        Command::Train(_) => {
            "a training job may have been created before the interrupt: `sagetrain list` shows it; otherwise run the same command again"
        }
        _ => "run the same command again",
    };
    error::Error::new(sig.kind(), format!("interrupted ({})", sig.name())).with_hint(hint)
}

/// Run a parsed command line and return the process exit code.
pub fn run(cli: Cli) -> i32 {
    let ctx = Context::from_process(cli.global.clone());
    secrets::register_env(&*ctx.env);
    ui::init_logging(cli.global.verbose, &*ctx.env);
    image::platform::set_cache_dir(fsutil::cache_dir(&*ctx.env));
    image::platform::set_refresh(cli.global.refresh);
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
                Command::Shell(args) => commands::shell::run(&ctx, args).await,
                Command::Data(cmd) => commands::data::run(&ctx, cmd).await,
                Command::Image(cmd) => commands::image::run(&ctx, cmd).await,
                Command::Tune(cmd) => commands::tune::run(&ctx, cmd).await,
                Command::Metrics(args) => commands::metrics::run(&ctx, args).await,
                Command::Completions(args) => commands::completions::completions(args.shell),
                Command::Man(args) => commands::completions::man(&ctx, args),
                Command::Pool(cmd) => commands::pool::run(&ctx, cmd).await,
            }
        };
        let command = async {
            match &limits.deadline {
                None => command.await,
                Some(d) => tokio::time::timeout(d.value, command)
                    .await
                    .unwrap_or_else(|_| Err(aws::timeouts::deadline_error(d))),
            }
        };
        signals::install();
        tokio::select! {
            biased;
            r = command => r,
            sig = signals::unclaimed() => Err(interrupted(&cli.command, sig)),
        }
    });
    // Blocking work that an interrupt abandoned (a scan, an extraction) is not waited for.
    runtime.shutdown_background();
    match result {
        Ok(()) => 0,
        Err(e) => {
            // A passed-through exit code was already explained by what printed it.
            if !e.message.is_empty() {
                ctx.ui.error(&e);
            }
            e.exit_code()
        }
    }
}
