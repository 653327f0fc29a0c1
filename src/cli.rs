//! The command-line definition. Flags only: environment variables and the config file are
//! layered on top of these in [`crate::config`], so that each value knows where it came from.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub use crate::job::settings::TrainArgs;

#[derive(Debug, Parser)]
#[command(
    name = "sagetrain",
    version,
    args_override_self = true,
    about = "Submit and follow Amazon SageMaker training jobs for a U-Net image",
    long_about = "Submit and follow Amazon SageMaker training jobs for a U-Net image.\n\n\
        Two kinds of credentials are involved: YOUR credentials (access keys, an SSO session or \
        a CI web identity) let sagetrain call AWS from this machine; the EXECUTION ROLE \
        (--role, SAGEMAKER_ROLE) is what SageMaker assumes to read your data and write your model.",
    after_help = "Exit codes: 0 ok, 1 internal error, 2 invalid input, 3 credentials, 4 AWS error, \
        5 job failed, 6 job stopped, 7 timed out, 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// AWS profile for your credentials [env: AWS_PROFILE]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS region of the job [env: AWS_REGION, AWS_DEFAULT_REGION]
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Send every AWS request to this endpoint (e.g. a local emulator) [env: AWS_ENDPOINT_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Configuration file (default: sagetrain.toml in this folder or a parent) [env: SAGETRAIN_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format of results on stdout
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Print only results and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail on stderr (-v settings and steps, -vv debug, -vvv AWS SDK debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Network time limits, for every command (see [`crate::aws::timeouts`]).
#[derive(Debug, Clone, Default, Args)]
pub struct NetArgs {
    /// Give up on a request whose response does not start within this long (each attempt): 30s, 2m [default: 60s] [env: SAGETRAIN_READ_TIMEOUT]
    #[arg(long, global = true, value_name = "DURATION")]
    pub read_timeout: Option<String>,
    /// Give up on connecting to an AWS endpoint after this long [default: 5s] [env: SAGETRAIN_CONNECT_TIMEOUT]
    #[arg(long, global = true, value_name = "DURATION")]
    pub connect_timeout: Option<String>,
    /// Stop the whole run after this long, retries included (exit 7) [env: SAGETRAIN_DEADLINE]
    #[arg(long, global = true, value_name = "DURATION")]
    pub deadline: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a SageMaker training job
    Train(TrainCmd),
    /// Show each effective setting of `train` and where it comes from (no AWS call)
    Config(TrainArgs),
    /// Check your setup (credentials, identity, region, role, image, bucket, data, config) and name the fix for each broken link
    #[command(
        long_about = "Check every link `sagetrain train` relies on, with the same settings (flags, environment, \
            sagetrain.toml), and name the fix for each broken one. Creates nothing.\n\n\
            One line per check: pass, warn, fail or skip (a check whose prerequisite failed). \
            `-o json` gives the same as structured data. Exit 0 when nothing failed; otherwise 3 if a \
            credentials check failed, else 2 for a configuration problem, else 4 for what AWS answered."
    )]
    Doctor(TrainArgs),
    /// Write a commented sagetrain.toml in this folder, filled in with what your account holds
    Init(InitArgs),
    /// Wait until a training job ends; its verdict is the exit code
    Wait(WaitArgs),
    /// Print a training job's logs (all hosts), or follow them until it ends
    Logs(LogsArgs),
    /// Show a training job's status, timings, instances and model
    Status(StatusArgs),
    /// List recent training jobs, newest first
    List(ListArgs),
    /// Stop a running training job
    Stop(StopArgs),
    /// Download a training job's model.tar.gz (and output.tar.gz), optionally unpacked
    Download(DownloadArgs),
    /// Training data: upload a local folder to S3
    #[command(subcommand)]
    Data(DataCommand),
    /// Warm pools (--keep-alive): list them, or release one now
    #[command(subcommand)]
    Pool(PoolCommand),
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// The account's Available warm pools: instances, the job they came from, when they expire
    List,
    /// Release a job's warm pool now (UpdateTrainingJob with a keep-alive of 0)
    Release(PoolReleaseArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct PoolReleaseArgs {
    /// The training job whose warm pool is released
    pub job: String,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Upload a folder to a content-addressed S3 prefix and print its URI (unchanged data is
    /// never uploaded twice)
    Push(PushArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct PushArgs {
    /// The folder to upload
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Channel name, part of the S3 key [default: the folder's name]
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
    /// Upload to the bucket of this output path [default: s3://sagemaker-REGION-ACCOUNT/]
    #[arg(long, value_name = "S3URI")]
    pub output_path: Option<String>,
    /// Follow symbolic links (by default they are skipped)
    #[arg(long)]
    pub follow_symlinks: bool,
    /// Upload files that look like AWS credentials instead of refusing
    #[arg(long)]
    pub allow_credentials_files: bool,
    /// Hash the folder and say what would be uploaded; upload nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `sagetrain train`: the job's settings, plus where to start from and whether to wait.
#[derive(Debug, Clone, Default, Args)]
pub struct TrainCmd {
    #[command(flatten)]
    pub args: TrainArgs,
    /// Start from an earlier job's settings (image, role, hyperparameters, channels, resources, tags, metrics, output path); flags given here override them
    #[arg(long, value_name = "JOB", help_heading = "Job")]
    pub from: Option<String>,
    /// After creating the job, wait until it ends; the exit code is its verdict (--logs, --timeout and --stop-on-interrupt imply it)
    #[arg(long, help_heading = "Waiting")]
    pub wait: bool,
    #[command(flatten)]
    pub follow: FollowArgs,
}

/// How to wait for a job (`train --wait`, `wait`).
#[derive(Debug, Clone, Default, Args)]
pub struct FollowArgs {
    /// Stream the job's CloudWatch logs to stderr while waiting
    #[arg(long, help_heading = "Waiting")]
    pub logs: bool,
    /// Stop waiting after this long (90m, 2h, 3600) and exit 7; the job keeps running
    #[arg(long, value_name = "DURATION", help_heading = "Waiting")]
    pub timeout: Option<String>,
    /// On Ctrl-C, stop the job instead of leaving it running
    #[arg(long, help_heading = "Waiting")]
    pub stop_on_interrupt: bool,
}

#[derive(Debug, Clone, Default, Args)]
pub struct WaitArgs {
    /// Training job name [default: the last job submitted from this project]
    pub job: Option<String>,
    #[command(flatten)]
    pub follow: FollowArgs,
}

#[derive(Debug, Clone, Default, Args)]
pub struct LogsArgs {
    /// Training job name [default: the last job submitted from this project]
    pub job: Option<String>,
    /// Keep printing new lines until the job ends
    #[arg(short, long)]
    pub follow: bool,
    /// Only lines from this long ago onwards (10m, 2h, 3600)
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct StatusArgs {
    /// Training job name [default: the last job submitted from this project]
    pub job: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only jobs in this status: InProgress, Completed, Failed, Stopping, Stopped
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Only jobs whose name contains this text
    #[arg(long, value_name = "TEXT")]
    pub name_contains: Option<String>,
    /// At most this many jobs
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub max: u32,
}

#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Training job name
    pub job: String,
}

#[derive(Debug, Clone, Default, Args)]
pub struct DownloadArgs {
    /// Training job name [default: the last job submitted from this project]
    pub job: Option<String>,
    /// Folder to download into [default: ./JOB]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Unpack the archives (model.tar.gz into DIR, output.tar.gz into DIR/output)
    #[arg(long)]
    pub extract: bool,
    /// Also download output.tar.gz (what the container wrote to /opt/ml/output/data)
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Default, Args)]
pub struct InitArgs {
    /// Overwrite an existing sagetrain.toml
    #[arg(long)]
    pub force: bool,
    /// Write the file to stdout instead of ./sagetrain.toml
    #[arg(long)]
    pub print: bool,
    /// Make no AWS call: write the template with every value commented out
    #[arg(long)]
    pub offline: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
