//! `sagetrain completions SHELL` and `sagetrain man`: generated from the clap definition
//! ([`Cli::command`]), so every command and flag that exists is in them.

use crate::cli::{Cli, ManArgs};
use crate::error::{Error, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;

/// The completion script for `shell`.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "sagetrain", &mut out);
    out
}

/// The manual page, in roff.
pub fn man_page() -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Error::internal(format!("cannot render the manual page: {e}")))?;
    Ok(out)
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn print(bytes: &[u8]) -> Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(bytes).and_then(|_| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::internal(format!("cannot write to stdout: {e}"))),
    }
}

pub fn completions(shell: Shell) -> Result<()> {
    print(&completion_script(shell))
}

pub fn man(ctx: &super::Context, args: &ManArgs) -> Result<()> {
    let Some(dir) = &args.dir else {
        return print(&man_page()?);
    };
    let dir = ctx.cwd.join(dir);
    let written = write_pages(&dir).map_err(|e| {
        Error::internal(format!(
            "cannot write the manual pages into {}: {e}",
            dir.display()
        ))
        .with_hint("choose a folder you can write to, e.g. --dir ~/.local/share/man/man1")
    })?;
    let mut paths: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    paths.sort();
    if ctx.json() {
        ctx.ui.result_json(&serde_json::json!({ "pages": paths }));
    } else {
        ctx.ui.result_text(&paths.join("\n"));
    }
    ctx.ui.info(&format!(
        "wrote {} pages; read one with: man -l {}",
        written.len(),
        dir.join("sagetrain.1").display()
    ));
    Ok(())
}

/// Every page (the command's and each subcommand's, `sagetrain-train.1`, ...) into `dir`.
pub fn write_pages(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    fn walk(
        cmd: clap::Command,
        dir: &std::path::Path,
        out: &mut Vec<std::path::PathBuf>,
    ) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, dir, out)?;
        }
        out.push(clap_mangen::Man::new(cmd).generate_to(dir)?);
        Ok(())
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, dir, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_that_knows_every_subcommand() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert!(names.iter().any(|n| n == "completions"), "{names:?}");
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell] {
            let text = String::from_utf8(completion_script(shell)).unwrap();
            for n in &names {
                assert!(text.contains(n.as_str()), "{shell}: no `{n}`");
            }
            // A flag of a subcommand, and a global one.
            assert!(text.contains("stop-on-interrupt"), "{shell}");
            assert!(text.contains("endpoint-url"), "{shell}");
        }
    }

    #[test]
    fn the_man_page_is_roff_with_every_subcommand() {
        let text = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(
            text.starts_with(".ie \\n(.g") || text.contains(".TH sagetrain"),
            "{text}"
        );
        assert!(text.contains(".TH sagetrain 1"), "{}", &text[..200]);
        for c in Cli::command().get_subcommands() {
            assert!(text.contains(c.get_name()), "no `{}`", c.get_name());
        }
    }

    #[test]
    fn every_page_is_written_with_the_subcommands_options() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_pages(dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "sagetrain.1",
            "sagetrain-train.1",
            "sagetrain-data-push.1",
            "sagetrain-man.1",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let train = std::fs::read_to_string(dir.path().join("sagetrain-train.1")).unwrap();
        assert!(train.contains("stop\\-on\\-interrupt"), "{train}");
    }
}
