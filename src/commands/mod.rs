//! The commands. Each takes the parsed arguments and a [`Context`], and returns a result that
//! `lib::run` maps to an exit code.

pub mod completions;
pub mod config;
pub mod data;
pub mod doctor;
pub mod download;
pub mod image;
pub mod init;
pub mod init_role;
pub mod jobcmd;
pub mod list;
pub mod local;
pub mod logs;
pub mod metrics;
pub mod pool;
pub mod shell;
pub mod status;
pub mod stop;
pub mod train;
pub mod tune;
pub mod wait;

use crate::cli::GlobalArgs;
use crate::config::LoadedFile;
use crate::error::Result;
use crate::ui::Ui;
use std::path::PathBuf;

/// Reads an environment variable (injectable for tests).
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String>>;

/// What every command gets: global flags, output, and the environment it reads.
pub struct Context {
    pub global: GlobalArgs,
    pub ui: Ui,
    pub cwd: PathBuf,
    pub env: EnvLookup,
}

impl Context {
    /// The context of this process: its environment and working folder (the one place that
    /// reads them; everything else goes through `env`).
    pub fn from_process(global: GlobalArgs) -> Context {
        Context::with_env(global, Box::new(crate::aws::process_env))
    }

    /// A context reading the environment through `env`.
    pub fn with_env(global: GlobalArgs, env: EnvLookup) -> Context {
        let ui = Ui::new(global.output.ui(), global.quiet, global.verbose, &*env);
        Context {
            global,
            ui,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            env,
        }
    }

    /// The config file in effect, if any.
    pub fn config_file(&self) -> Result<Option<LoadedFile>> {
        let path =
            crate::config::find_config(self.global.config.as_deref(), &*self.env, &self.cwd)?;
        path.map(|p| crate::job::settings::load_file(&p))
            .transpose()
    }

    pub fn json(&self) -> bool {
        self.global.output == crate::cli::OutputFormat::Json
    }
}
