//! Container images: read an image archive (`docker save` or OCI), check that SageMaker can
//! run it (linux/amd64), and push it to ECR through the ECR API; or build it first with the
//! container engine on PATH.

pub mod archive;
pub mod engine;
pub mod media;
pub mod platform;
pub mod pull;
pub mod push;
#[cfg(test)]
pub mod testdata;

use crate::error::{Error, Result};
use crate::signals::Signal;
use std::path::{Path, PathBuf};

/// Wait for Ctrl-C or SIGTERM (the one place the push waits for an interrupt), through the
/// process's one signal mechanism.
pub async fn interrupted() -> Signal {
    crate::signals::claim().recv().await
}

/// The error of an interrupted push: exit 130 for Ctrl-C, 143 for SIGTERM.
pub fn interrupted_error(sig: Signal) -> Error {
    Error::new(
        sig.kind(),
        format!(
            "the push was interrupted ({}); the image was not tagged",
            sig.name()
        ),
    )
    .with_hint(
        "run the same command again: the layers already in the repository are not sent again",
    )
}

/// A gzipped archive (`docker save IMAGE | gzip`) unpacked into `dir`; others as they are.
pub fn plain_archive(path: &Path, dir: &Path) -> Result<PathBuf> {
    if !archive::is_gzip(path)? {
        return Ok(path.to_path_buf());
    }
    let out = dir.join("archive.tar");
    let mut src = flate2::read::GzDecoder::new(std::io::BufReader::new(std::fs::File::open(path)?));
    let mut dst = std::fs::File::create(&out)?;
    std::io::copy(&mut src, &mut dst).map_err(|e| {
        Error::usage(format!(
            "{} is not a readable gzip file: {e}",
            path.display()
        ))
    })?;
    Ok(out)
}
