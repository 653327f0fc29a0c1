//! `sagetrain download [JOB] [--dir DIR] [--extract] [--all]`: the job's `model.tar.gz` (and
//! `output.tar.gz` beside it), streamed to disk, with a progress bar on a terminal; `--extract`
//! unpacks them, refusing entries that would land outside DIR.

use super::jobcmd;
use super::Context;
use crate::cli::DownloadArgs;
use crate::error::{Error, Result};
use crate::refs::S3Uri;
use crate::ui::Ui;
use std::path::{Path, PathBuf};

/// Download `uri` to `dest` with a progress bar on a terminal. Returns the byte count, or
/// None if the object does not exist.
pub async fn fetch(
    s3: &aws_sdk_s3::Client,
    uri: &S3Uri,
    dest: &Path,
    ui: &Ui,
) -> Result<Option<u64>> {
    let bar = if ui.stderr_is_terminal && !ui.quiet {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_message(
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let got = crate::data::fetch::object(s3, uri, dest, &|n, total| {
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.inc(n);
    })
    .await;
    bar.finish_and_clear();
    Ok(got?.map(|(bytes, _)| bytes))
}

/// `output.tar.gz`, beside `model.tar.gz`.
pub fn output_uri(model: &S3Uri) -> S3Uri {
    let key = match model.key.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/output.tar.gz"),
        None => "output.tar.gz".to_string(),
    };
    S3Uri {
        bucket: model.bucket.clone(),
        key,
    }
}

pub async fn run(ctx: &Context, args: &DownloadArgs) -> Result<()> {
    let mut t = jobcmd::target(ctx)?;
    let job = jobcmd::job_name(ctx, args.job.as_deref(), &mut t)?;
    let dir: PathBuf = match &args.dir {
        Some(d) if d.is_absolute() => d.clone(),
        Some(d) => ctx.cwd.join(d),
        None => ctx.cwd.join(&job),
    };
    if dir.exists() && !dir.is_dir() {
        return Err(Error::usage(format!(
            "--dir: {} exists and is not a folder",
            dir.display()
        )));
    }
    let aws = jobcmd::connect(ctx, &t).await?;
    let d = jobcmd::describe(&aws, &job).await?;
    let status = d
        .training_job_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let Some(model) = d
        .model_artifacts()
        .and_then(|m| m.s3_model_artifacts())
        .filter(|m| !m.is_empty())
    else {
        let hint = match status.as_str() {
            "InProgress" | "Stopping" => {
                format!("wait for it: sagetrain wait {job}; then download again")
            }
            "Failed" => {
                format!("it failed before writing a model: sagetrain status {job} says why")
            }
            _ => format!("sagetrain status {job} shows what it did"),
        };
        return Err(Error::aws(format!(
            "training job `{job}` has no model artifacts (it is {status})"
        ))
        .with_hint(hint));
    };
    let model_uri = S3Uri::parse(model)
        .map_err(|rule| Error::aws(format!("the job's model artifact URI {model} {rule}")))?;
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    let s3 = aws.s3();
    let mut archives: Vec<(PathBuf, PathBuf)> = Vec::new();
    let model_path = dir.join("model.tar.gz");
    ctx.ui.info(&format!("downloading {model_uri}"));
    match fetch(&s3, &model_uri, &model_path, &ctx.ui).await? {
        Some(_) => archives.push((model_path.clone(), dir.clone())),
        None => {
            return Err(Error::aws(format!(
                "the job's model {model_uri} does not exist (any more)"
            ))
            .with_hint("it may have been deleted, or the job ended before uploading it"))
        }
    }
    if args.all {
        let out_uri = output_uri(&model_uri);
        let out_path = dir.join("output.tar.gz");
        ctx.ui.info(&format!("downloading {out_uri}"));
        match fetch(&s3, &out_uri, &out_path, &ctx.ui).await? {
            Some(_) => archives.push((out_path, dir.join("output"))),
            None => ctx.ui.warn(&format!(
                "{out_uri} does not exist: the job wrote nothing to /opt/ml/output/data"
            )),
        }
    }
    let mut extracted: Vec<PathBuf> = Vec::new();
    if args.extract {
        for (archive, into) in &archives {
            let files = crate::data::archive::extract_async(archive.clone(), into.clone()).await?;
            extracted.extend(files);
        }
    }
    let shown = |p: &Path| p.display().to_string();
    if ctx.json() {
        ctx.ui.result_json(&serde_json::json!({
            "job_name": job,
            "dir": shown(&dir),
            "archives": archives.iter().map(|(a, _)| shown(a)).collect::<Vec<_>>(),
            "extracted": extracted.iter().map(|p| shown(p)).collect::<Vec<_>>(),
        }));
    } else {
        let lines: Vec<String> = archives
            .iter()
            .map(|(a, _)| shown(a))
            .chain(extracted.iter().map(|p| shown(p)))
            .collect();
        ctx.ui.result_text(&lines.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_tar_gz_is_beside_the_model() {
        let m = S3Uri::parse("s3://bkt/out/unet-1/output/model.tar.gz").unwrap();
        assert_eq!(
            output_uri(&m).to_string(),
            "s3://bkt/out/unet-1/output/output.tar.gz"
        );
    }
}
