//! `sagetrain stop JOB`: DescribeTrainingJob, then StopTrainingJob for a running job. A job that
//! already ended (or is stopping) is reported with its status, not an error.

use super::jobcmd;
use super::Context;
use crate::cli::StopArgs;
use crate::error::Result;
use crate::follow::{self, StopOutcome};

pub async fn run(ctx: &Context, args: &StopArgs) -> Result<()> {
    let mut t = jobcmd::target(ctx)?;
    let job = jobcmd::job_name(ctx, Some(&args.job), &mut t)?;
    let aws = jobcmd::connect(ctx, &t).await?;
    let sm = aws.sagemaker();
    let outcome = follow::stop_job(&sm, &job).await?;
    let status = match &outcome {
        // What the job says now (Stopping, usually); not worth failing over.
        StopOutcome::Requested => follow::describe(&sm, &job)
            .await
            .ok()
            .and_then(|d| d.training_job_status().map(|s| s.as_str().to_string()))
            .unwrap_or_else(|| "Stopping".into()),
        StopOutcome::AlreadyEnded { status } | StopOutcome::AlreadyStopping { status } => {
            status.clone()
        }
    };
    let after = format!(
        "SageMaker sends the container SIGTERM, then SIGKILL after 120 s; the model written so far is uploaded. \
         `sagetrain wait {job}` shows when it has stopped"
    );
    jobcmd::show_stop(
        ctx,
        ("training job", "job_name"),
        &job,
        &outcome,
        &status,
        &after,
    );
    Ok(())
}
