//! `sagetrain wait [JOB]`: follow an existing job until it ends; the verdict is the exit code.

use super::jobcmd;
use super::Context;
use crate::cli::WaitArgs;
use crate::error::Result;

pub async fn run(ctx: &Context, args: &WaitArgs) -> Result<()> {
    let opts = jobcmd::wait_options(ctx, &args.follow)?;
    let mut t = jobcmd::target(ctx)?;
    let job = jobcmd::job_name(ctx, args.job.as_deref(), &mut t)?;
    let aws = jobcmd::connect(ctx, &t).await?;
    jobcmd::follow_and_report(ctx, &aws, &job, &opts, None).await
}
