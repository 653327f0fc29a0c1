//! `sagetrain pool list` and `sagetrain pool release JOB`: the warm pools of `--keep-alive`.

use super::jobcmd;
use super::Context;
use crate::cli::PoolCommand;
use crate::error::Result;
use crate::job::pools;
use crate::ui::Ui;

pub async fn run(ctx: &Context, cmd: &PoolCommand) -> Result<()> {
    let mut t = jobcmd::target(ctx)?;
    match cmd {
        PoolCommand::List => {
            let aws = jobcmd::connect(ctx, &t).await?;
            let found = pools::available(&aws.sagemaker()).await?;
            let memo =
                crate::job::remembered::Remembered::new(crate::fsutil::cache_dir(&*ctx.env), false);
            let region = aws.region.value.clone();
            let rows: Vec<pools::PoolRow> = found
                .iter()
                .filter_map(pools::row)
                .map(|mut r| {
                    r.cost_per_hour_usd = r
                        .instance_type
                        .as_deref()
                        .and_then(|t| memo.price_any_age(&region, t))
                        .map(|h| h * f64::from(r.instance_count.unwrap_or(1)));
                    r
                })
                .collect();
            if ctx.json() {
                ctx.ui
                    .result_json(&serde_json::to_value(&rows).unwrap_or_default());
            } else if rows.is_empty() {
                ctx.ui.info(
                    "no Available warm pools; a job started with --keep-alive 30m keeps one after it ends",
                );
            } else {
                let cells: Vec<(String, String, String)> = rows
                    .iter()
                    .map(|r| {
                        (
                            r.job_name.clone(),
                            format!(
                                "{} x {}{}",
                                r.instance_count.unwrap_or(1),
                                r.instance_type.as_deref().unwrap_or("?"),
                                r.cost_per_hour_usd
                                    .map(|c| format!(
                                        ", {} an hour while it waits",
                                        crate::job::cost::usd(c)
                                    ))
                                    .unwrap_or_default()
                            ),
                            r.expires.clone().unwrap_or_else(|| "-".into()),
                        )
                    })
                    .collect();
                ctx.ui
                    .result_text(&Ui::table(&cells, ("from job", "instances", "expires")));
            }
        }
        PoolCommand::Release(args) => {
            let job = jobcmd::job_name(ctx, Some(&args.job), &mut t)?;
            let aws = jobcmd::connect(ctx, &t).await?;
            pools::release(&aws.sagemaker(), &job).await?;
            if ctx.json() {
                ctx.ui
                    .result_json(&serde_json::json!({"job_name": job, "released": true}));
            } else {
                ctx.ui
                    .result_text(&format!("warm pool of {job}: release requested"));
            }
        }
    }
    Ok(())
}
