//! `sagetrain status [JOB]`: status, secondary status, failure reason, timings, instances and
//! the model artifact URI.

use super::jobcmd;
use super::Context;
use crate::cli::StatusArgs;
use crate::error::Result;
use crate::follow::report::StatusReport;

pub async fn run(ctx: &Context, args: &StatusArgs) -> Result<()> {
    if args.local {
        return local(ctx, args.job.as_deref());
    }
    let mut t = jobcmd::target(ctx)?;
    let job = jobcmd::job_name(ctx, args.job.as_deref(), &mut t)?;
    let aws = jobcmd::connect(ctx, &t).await?;
    let d = jobcmd::describe(&aws, &job).await?;
    let r = jobcmd::priced(ctx, StatusReport::from_describe(&d));
    if ctx.json() {
        ctx.ui.result_json(&r.to_json());
    } else {
        ctx.ui.result_text(&r.to_text());
    }
    Ok(())
}

/// `status --local [NAME]`: the record of a local run (`run.json`), with whether its process
/// still runs it.
fn local(ctx: &Context, name: Option<&str>) -> Result<()> {
    use crate::job::local::record::process_alive;
    let run = jobcmd::local_run(ctx, name)?;
    if ctx.json() {
        ctx.ui.result_json(&run.to_json(&process_alive));
    } else {
        ctx.ui.result_text(&run.to_text(&process_alive));
    }
    Ok(())
}
