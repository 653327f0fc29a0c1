//! The command-line definition. Flags only: environment variables and the config file are
//! layered on top of these (see [`crate::config::layer`]), so that each value knows where it
//! came from. The flags of a declared settings group (`TrainArgs`, `TuneArgs`, the connection,
//! the time limits, the polling) come from its declaration and are flattened in here; nothing
//! below `commands/` imports this module.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub use crate::aws::connection::ConnectionArgs;
pub use crate::aws::timeouts::NetArgs;
pub use crate::follow::settings::PollArgs;
pub use crate::job::settings::TrainArgs;
pub use crate::job::tune::TuneArgs;

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
        5 job failed, 6 job stopped, 7 timed out, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."
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
    #[command(flatten)]
    pub connection: ConnectionArgs,
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
    /// Ask AWS again instead of using what earlier runs remembered (the account of your credentials, the default bucket, image platform verdicts)
    #[arg(long, global = true)]
    pub refresh: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

impl OutputFormat {
    /// The output layer's plain form of it.
    pub fn ui(self) -> crate::ui::Format {
        match self {
            OutputFormat::Text => crate::ui::Format::Text,
            OutputFormat::Json => crate::ui::Format::Json,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a SageMaker training job
    Train(TrainCmd),
    /// Show each effective setting of every command and where it comes from (no AWS call)
    Config(ConfigArgs),
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
    /// Open a shell in a running job's container over SSM (remote debugging), or run one command there
    #[command(
        long_about = "Open a shell in a running job's container, or run one command there and exit with its \
            exit code (`sagetrain shell JOB -- nvidia-smi`). The session goes through AWS Systems Manager: \
            the job needs remote debugging (`train --remote-debug`, or `sagetrain shell --enable JOB` for a \
            running one), your credentials need ssm:StartSession, and this machine the Session Manager \
            plugin (`session-manager-plugin`); the AWS CLI is not needed.\n\n\
            Ctrl-C goes to the remote shell. Exit codes: the remote command's (or the shell's), 2 when the \
            job is not running, has no such host, has remote debugging off or the plugin is missing, \
            3 for credentials, 4 for what AWS answered."
    )]
    Shell(ShellArgs),
    /// Download a training job's model.tar.gz (and output.tar.gz), optionally unpacked
    Download(DownloadArgs),
    /// Training data: upload a local folder to S3
    #[command(subcommand)]
    Data(DataCommand),
    /// Container images: build and push to ECR through the ECR API (no docker login)
    #[command(subcommand)]
    Image(ImageCommand),
    /// Search hyperparameters with SageMaker's tuner (the settings of `train` plus --range); `tune status|wait|best|stop` for its results
    Tune(TuneCmd),
    /// Training curves: each metric's values over time, from the jobs' logs, as charts or a table
    #[command(
        long_about = "Training curves: each metric's values over time and its final value, for one or more \
            jobs (default: the last job submitted from this project).\n\n\
            The values are parsed from each job's CloudWatch logs with the job's own MetricDefinitions \
            (the first capture group of each regex, as SageMaker does), plus FinalMetricDataList. On a \
            terminal: a line chart per metric, the jobs overlaid with a legend; elsewhere a table; \
            -o json the series. --png/--svg write the same charts as an image."
    )]
    Metrics(MetricsArgs),
    /// Print a shell completion script to stdout (bash, zsh, fish, powershell)
    #[command(long_about = "Print a shell completion script to stdout.\n\n\
            bash:       sagetrain completions bash > ~/.local/share/bash-completion/completions/sagetrain\n\
            zsh:        sagetrain completions zsh > ~/.zfunc/_sagetrain   (with fpath+=~/.zfunc before compinit)\n\
            fish:       sagetrain completions fish > ~/.config/fish/completions/sagetrain.fish\n\
            powershell: sagetrain completions powershell >> $PROFILE")]
    Completions(CompletionsArgs),
    /// Print the manual page (roff) to stdout, or write one page per command into a folder
    #[command(
        long_about = "Print the manual page (roff) to stdout, or with --dir write one page per command \
            (sagetrain.1, sagetrain-train.1, ...) into a folder and print their paths.\n\n\
            Read it now:   sagetrain man > sagetrain.1 && man -l sagetrain.1\n\
            Install:       sagetrain man --dir ~/.local/share/man/man1"
    )]
    Man(ManArgs),
    /// Warm pools (--keep-alive): list them, or release one now
    #[command(subcommand)]
    Pool(PoolCommand),
}

/// `sagetrain tune`: the settings of `train`, the tuning flags, or a subcommand.
#[derive(Debug, Clone, Default, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TuneCmd {
    #[command(subcommand)]
    pub action: Option<TuneAction>,
    #[command(flatten)]
    pub args: TrainArgs,
    #[command(flatten)]
    pub tune: TuneArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TuneAction {
    /// Show a tuning job's state and its training jobs, best first
    Status(TuneName),
    /// Wait until a tuning job ends; its verdict is the exit code (0 completed, 5 failed, 6 stopped)
    Wait(TuneWaitArgs),
    /// Print the name of a tuning job's best training job (for `train --from`)
    Best(TuneName),
    /// Stop a running tuning job (and the training jobs it started)
    Stop(TuneStopArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct TuneName {
    /// Tuning job name [default: the last tuning job submitted from this project]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct TuneWaitArgs {
    /// Tuning job name [default: the last tuning job submitted from this project]
    pub name: Option<String>,
    /// Stop waiting after this long (90m, 2h, 3600) and exit 7; the tuning job keeps running
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// On Ctrl-C, stop the tuning job instead of leaving it running
    #[arg(long)]
    pub stop_on_interrupt: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TuneStopArgs {
    /// Tuning job name
    pub name: String,
}

/// `sagetrain config`: the flags of every declared setting, whose values it shows.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    #[command(flatten)]
    pub tune: TuneArgs,
    #[command(flatten)]
    pub poll: PollArgs,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ManArgs {
    /// Write every page (sagetrain.1 and one per subcommand) into this folder, made if missing
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct MetricsArgs {
    /// Training job names [default: the last job submitted from this project]
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,
    /// Also write the charts as a PNG image to FILE
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Also write the charts as an SVG image to FILE
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Image size in pixels, WIDTHxHEIGHT [default: 1000 wide, 320 high per metric]
    #[arg(long, value_name = "WxH")]
    pub size: Option<String>,
    /// Redraw the charts on the terminal while the jobs run, until they end
    #[arg(short, long)]
    pub follow: bool,
    /// Local runs (`train --local`) instead of training jobs: JOB names a local run [default: the newest]; their train.log is parsed, no AWS call
    #[arg(long)]
    pub local: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build a folder with a Dockerfile (or take an image archive) for linux/amd64 and push it
    /// to ECR; prints the digest-pinned image URI
    Push(PushImageArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct PushImageArgs {
    /// Build context: a folder with a Dockerfile [default: .]
    #[arg(value_name = "CONTEXT", conflicts_with = "archive")]
    pub context: Option<PathBuf>,
    /// Push this image archive instead of building (`docker save` or OCI archive); needs no engine
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,
    /// ECR repository [default: the repository of `image` in the settings]
    #[arg(long, value_name = "NAME")]
    pub repo: Option<String>,
    /// Image tag
    #[arg(long, value_name = "TAG", default_value = "latest")]
    pub tag: String,
    /// Fail when the repository does not exist instead of creating it
    #[arg(long)]
    pub no_create: bool,
    /// Container engine that builds the image: docker, podman, finch or nerdctl [default: the first on PATH] [env: SAGETRAIN_ENGINE]
    #[arg(long, value_name = "NAME")]
    pub engine: Option<String>,
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
    #[command(flatten)]
    pub poll: PollArgs,
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
    /// With --follow: how often to poll
    #[command(flatten)]
    pub poll: PollArgs,
}

#[derive(Debug, Clone, Default, Args)]
pub struct StatusArgs {
    /// Training job name [default: the last job submitted from this project]; with --local, a local run's name [default: the newest]
    pub job: Option<String>,
    /// A local run (`train --local`, recorded in .sagetrain/local/NAME/run.json) instead of a training job; no AWS call
    #[arg(long)]
    pub local: bool,
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
pub struct ShellArgs {
    /// Training job name [default: the last job submitted from this project]
    pub job: Option<String>,
    /// The host: algo-1 .. algo-N, one per instance
    #[arg(long, value_name = "HOST", default_value = "algo-1")]
    pub host: String,
    /// Turn remote debugging on for the running job (UpdateTrainingJob) instead of opening a shell
    #[arg(long, conflicts_with = "command")]
    pub enable: bool,
    /// Run this command instead of a shell (after `--`); its exit code is sagetrain's
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
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
    /// Create the execution role (or bring sagetrain's own up to date) with least privilege
    /// derived from the settings, and set `role` in sagetrain.toml
    #[arg(long, conflicts_with_all = ["force", "print", "offline"])]
    pub create_role: bool,
    /// With --create-role: the role's name [default: SageMaker-UNetTraining-ExecutionRole]
    #[arg(long, value_name = "NAME", requires = "create_role")]
    pub role_name: Option<String>,
    /// With --create-role: the role's path [default: /service-role/]
    #[arg(long, value_name = "PATH", requires = "create_role")]
    pub role_path: Option<String>,
    /// With --create-role: print both policy documents and the calls it would make; change nothing
    #[arg(long, requires = "create_role")]
    pub dry_run: bool,
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
