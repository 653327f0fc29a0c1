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
use tokio::io::AsyncWriteExt;

/// Download `uri` to `dest`, chunk by chunk (never whole in memory), through a `.part` file
/// renamed at the end. Returns the byte count, or None if the object does not exist.
pub async fn fetch(
    s3: &aws_sdk_s3::Client,
    uri: &S3Uri,
    dest: &Path,
    ui: &Ui,
) -> Result<Option<u64>> {
    let out = match s3
        .get_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) => {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key())
                || crate::aws::error_code(&e).as_deref() == Some("NoSuchKey")
            {
                return Ok(None);
            }
            return Err(crate::aws::aws_error("s3:GetObject", &e));
        }
    };
    let expected = out.content_length().filter(|n| *n >= 0).map(|n| n as u64);
    let bar = if ui.stderr_is_terminal && !ui.quiet {
        let b = match expected {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
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
    let part = {
        let mut name = dest.file_name().unwrap_or_default().to_os_string();
        name.push(".part");
        dest.with_file_name(name)
    };
    let io_err = |what: &str, p: &Path, e: std::io::Error| {
        Error::internal(format!("cannot {what} {}: {e}", p.display()))
    };
    let file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| io_err("write", &part, e))?;
    let mut w = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut body = out.body;
    let mut written = 0u64;
    loop {
        match body.try_next().await {
            Ok(Some(chunk)) => {
                w.write_all(&chunk)
                    .await
                    .map_err(|e| io_err("write", &part, e))?;
                written += chunk.len() as u64;
                bar.set_position(written);
            }
            Ok(None) => break,
            Err(e) => {
                drop(w);
                let _ = tokio::fs::remove_file(&part).await;
                return Err(Error::aws(format!(
                    "s3:GetObject {uri}: the download broke off after {written} bytes: {e}"
                ))
                .with_hint("run the same command again"));
            }
        }
    }
    w.flush().await.map_err(|e| io_err("write", &part, e))?;
    drop(w);
    bar.finish_and_clear();
    if let Some(n) = expected {
        if n != written {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(
                Error::aws(format!("s3:GetObject {uri}: got {written} bytes of {n}"))
                    .with_hint("run the same command again"),
            );
        }
    }
    tokio::fs::rename(&part, dest)
        .await
        .map_err(|e| io_err("write", dest, e))?;
    Ok(Some(written))
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
