//! Progress of hashing and uploading, on stderr only: a bar on a terminal (files, bytes, rate,
//! ETA), plain lines every few seconds elsewhere (CI logs), nothing with `-q`.

use super::Ui;
use crate::config::durations;
use indicatif::{DecimalBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a plain progress line is printed when stderr is not a terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

enum Mode {
    Bar(ProgressBar),
    Lines { last: Mutex<Instant> },
    Silent,
}

/// Counts files and bytes done out of a total, and shows them.
pub struct Progress {
    label: String,
    total_files: u64,
    total_bytes: u64,
    files: AtomicU64,
    bytes: AtomicU64,
    start: Instant,
    mode: Mode,
}

impl Progress {
    pub fn new(ui: &Ui, label: &str, total_files: u64, total_bytes: u64) -> Progress {
        let mode = if ui.quiet || total_files == 0 {
            Mode::Silent
        } else if ui.stderr_is_terminal {
            let bar =
                ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:28}] {msg} {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            bar.set_message(format!("0/{total_files} files"));
            bar.enable_steady_tick(Duration::from_millis(200));
            Mode::Bar(bar)
        } else {
            Mode::Lines {
                last: Mutex::new(Instant::now()),
            }
        };
        Progress {
            label: label.to_string(),
            total_files,
            total_bytes,
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            start: Instant::now(),
            mode,
        }
    }

    /// A silent counter (tests).
    #[cfg(test)]
    pub fn silent() -> Progress {
        Progress {
            label: String::new(),
            total_files: 0,
            total_bytes: 0,
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            start: Instant::now(),
            mode: Mode::Silent,
        }
    }

    #[cfg(test)]
    pub fn done(&self) -> (u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// `files` finished and `bytes` more sent (or read).
    pub fn inc(&self, files: u64, bytes: u64) {
        let f = self.files.fetch_add(files, Ordering::Relaxed) + files;
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match &self.mode {
            Mode::Bar(bar) => {
                bar.set_position(b);
                if files > 0 {
                    bar.set_message(format!("{f}/{} files", self.total_files));
                }
            }
            Mode::Lines { last } => {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= LINE_INTERVAL {
                    *last = Instant::now();
                    eprintln!("{}", self.line(f, b));
                }
            }
            Mode::Silent => {}
        }
    }

    /// One plain status line.
    pub fn line(&self, files: u64, bytes: u64) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / secs;
        let eta = if rate > 0.0 && self.total_bytes > bytes {
            format!(
                ", ETA {}",
                durations::format_secs(((self.total_bytes - bytes) as f64 / rate) as u64)
            )
        } else {
            String::new()
        };
        format!(
            "{}: {files}/{} files, {}/{}, {}/s{eta}",
            self.label,
            self.total_files,
            DecimalBytes(bytes),
            DecimalBytes(self.total_bytes),
            DecimalBytes(rate as u64),
        )
    }

    /// Remove the bar (the caller prints the summary).
    pub fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        // Decimal units as `aws s3` and the progress bar print them.
        assert_eq!(DecimalBytes(999).to_string(), "999 B");
        assert_eq!(DecimalBytes(1_500).to_string(), "1.50 kB");
        assert_eq!(DecimalBytes(350_200_000).to_string(), "350.20 MB");
    }

    #[test]
    fn plain_line_has_files_bytes_rate_and_eta() {
        let p = Progress {
            label: "train".into(),
            total_files: 10,
            total_bytes: 10_000_000,
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            start: Instant::now() - Duration::from_secs(2),
            mode: Mode::Silent,
        };
        let l = p.line(3, 2_000_000);
        assert!(
            l.starts_with("train: 3/10 files, 2.00 MB/10.00 MB, "),
            "{l}"
        );
        assert!(l.contains("/s, ETA "), "{l}");
    }
}
