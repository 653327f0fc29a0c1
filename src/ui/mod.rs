//! Output: results on stdout (text or JSON), everything else on stderr. All text passes through
//! [`crate::secrets::redact`]. Color only on a terminal and never with `NO_COLOR`.

pub mod progress;

use crate::secrets::redact;
use std::io::{IsTerminal, Write};

/// The form of the results on stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Ui {
    #[allow(dead_code)] // the commands read the format from the global flags
    pub format: Format,
    pub quiet: bool,
    pub verbose: u8,
    pub color: bool,
    pub stderr_is_terminal: bool,
}

impl Ui {
    /// The output settings; `env` is read for `NO_COLOR`.
    pub fn new(
        format: Format,
        quiet: bool,
        verbose: u8,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Ui {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        let no_color = env("NO_COLOR").is_some_and(|v| !v.is_empty());
        Ui {
            format,
            quiet,
            verbose,
            color: stderr_is_terminal && !no_color,
            stderr_is_terminal,
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn err_line(&self, text: &str) {
        let mut e = std::io::stderr().lock();
        let _ = writeln!(e, "{}", redact(text));
    }

    /// A step or a fact about where something came from. Hidden by `-q`.
    pub fn info(&self, text: &str) {
        if !self.quiet {
            self.err_line(text);
        }
    }

    /// Detail shown with `-v`.
    pub fn detail(&self, text: &str) {
        if self.verbose > 0 && !self.quiet {
            self.err_line(text);
        }
    }

    pub fn warn(&self, text: &str) {
        if !self.quiet {
            let label = self.paint("33", "warning:");
            self.err_line(&format!("{label} {text}"));
        }
    }

    pub fn error(&self, err: &crate::error::Error) {
        let text = err.to_string();
        let text = match text.strip_prefix("error:") {
            Some(rest) => format!("{}{rest}", self.paint("31;1", "error:")),
            None => text,
        };
        self.err_line(&text);
    }

    /// A result for stdout, as text.
    pub fn result_text(&self, text: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{}", redact(text));
    }

    /// A result for stdout, as one JSON document.
    pub fn result_json(&self, value: &serde_json::Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
        self.result_text(&text);
    }

    /// Settings rows as an aligned table.
    pub fn table(rows: &[(String, String, String)], headers: (&str, &str, &str)) -> String {
        let w0 = rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(0)
            .max(headers.0.len());
        let w1 = rows
            .iter()
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0)
            .max(headers.1.len())
            .min(70);
        let mut out = format!("{:w0$}  {:w1$}  {}\n", headers.0, headers.1, headers.2);
        for (a, b, c) in rows {
            out.push_str(&format!("{a:w0$}  {b:w1$}  {c}\n"));
        }
        out.trim_end().to_string()
    }
}

/// Rows of cells as aligned columns (two spaces apart, no trailing blanks), for text tables of
/// any width.
/// A word for a POSIX shell: single-quoted unless it needs no quoting (for the commands the
/// messages print and the command a remote shell runs).
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@,+-%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Words for a POSIX shell, each quoted by [`shell_word`], joined by spaces.
pub fn shell_words<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn columns<R: AsRef<[String]>>(rows: &[R]) -> String {
    let n = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.as_ref().get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            r.as_ref()
                .iter()
                .enumerate()
                .map(|(c, cell)| format!("{cell:<w$}", w = widths[c]))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A writer for tracing that redacts each event before it reaches stderr.
pub struct RedactingStderr {
    buf: Vec<u8>,
}

impl Write for RedactingStderr {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingStderr {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let text = String::from_utf8_lossy(&self.buf);
            let _ = std::io::stderr().lock().write_all(redact(&text).as_bytes());
        }
    }
}

/// Logging on stderr: `-v` sagetrain info, `-vv` sagetrain debug, `-vvv` the AWS SDK too;
/// `SAGETRAIN_LOG` (read through `env`) replaces the filter.
pub fn init_logging(verbose: u8, env: &dyn Fn(&str) -> Option<String>) {
    let filter = match verbose {
        0 | 1 => "warn",
        2 => "warn,sagetrain=debug",
        _ => "debug,hyper=info,rustls=info,h2=info",
    };
    let filter = env("SAGETRAIN_LOG").unwrap_or_else(|| filter.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(|| RedactingStderr { buf: Vec::new() })
        .with_ansi(false)
        .with_target(true)
        .without_time()
        .try_init();
}
