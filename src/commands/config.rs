//! `sagetrain config`: each effective setting of every command and where it comes from. No
//! AWS call.

use super::Context;
use crate::aws::timeouts::{self, Timeouts};
use crate::cli::{ConfigArgs, GlobalArgs};
use crate::config::layer::{cells, Group, Row};
use crate::config::{LoadedFile, Violation};
use crate::error::Result;
use crate::job::settings::TrainSettings;
use crate::job::spec::{validate_settings_at, violations_error};
use crate::job::tune::TuneSettings;
use crate::ui::Ui;

/// Every declared group of settings, by name: what `sagetrain config` shows, the README's
/// configuration reference lists and the tests go over.
pub fn groups() -> Vec<(&'static str, Group)> {
    vec![
        ("connection", crate::aws::connection::group()),
        ("train", crate::job::settings::group()),
        ("tune", crate::job::tune::settings::group()),
        ("timeouts", timeouts::group()),
        ("polling", crate::follow::settings::group()),
        ("upload", crate::data::upload::group()),
    ]
}

/// The `train` settings (checked by the caller) and the rows of every setting of every
/// command, layered from these flags, the environment and the file; `Err`: every value that
/// cannot be read.
pub fn layered(
    global: &GlobalArgs,
    limits: &Timeouts,
    args: &ConfigArgs,
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<&LoadedFile>,
) -> std::result::Result<(TrainSettings, Vec<Row>), Vec<Violation>> {
    let mut v = Vec::new();
    let train = TrainSettings::layer(&global.connection, &args.train, env, file)
        .map_err(|e| v.extend(e))
        .ok();
    let tune = TuneSettings::layer(&args.tune, file)
        .map_err(|e| v.extend(e))
        .ok();
    let poll = crate::follow::settings::PollSettings::layered(&args.poll, env, file)
        .map_err(|e| v.extend(e))
        .ok();
    let upload = crate::data::upload::UploadSettings::layered(&Default::default(), env, file)
        .map_err(|e| v.extend(e))
        .ok();
    let (Some(train), Some(tune), Some(poll), Some(upload)) = (train, tune, poll, upload) else {
        return Err(v);
    };
    let mut rows = train.rows();
    rows.extend(tune.declared_rows());
    rows.extend(limits.rows());
    rows.extend(poll.declared_rows());
    rows.extend(upload.declared_rows());
    Ok((train, rows))
}

pub fn run(ctx: &Context, args: &ConfigArgs) -> Result<()> {
    let file = ctx.config_file()?;
    let (settings, rows) = layered(
        &ctx.global,
        &timeouts::current(),
        args,
        &*ctx.env,
        file.as_ref(),
    )
    .map_err(violations_error)?;
    let rows = cells(&rows);
    if ctx.json() {
        let settings_json: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v, s)| (k.clone(), serde_json::json!({"value": v, "source": s})))
            .collect();
        ctx.ui.result_json(&serde_json::json!({
            "config_file": settings.config_path.as_ref().map(|p| p.display().to_string()),
            "settings": settings_json,
        }));
    } else {
        let file_line = match &settings.config_path {
            Some(p) => format!("config file: {}", p.display()),
            None => {
                "config file: none (sagetrain.toml not found in this folder or its parents)".into()
            }
        };
        ctx.ui.result_text(&file_line);
        ctx.ui
            .result_text(&Ui::table(&rows, ("setting", "value", "source")));
    }
    let violations = validate_settings_at(&settings, &ctx.cwd);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations_error(violations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::config::Source;
    use clap::CommandFactory;

    /// Every declared flag is a flag of `config` (and of the commands of its group), its help
    /// names its environment variables, and given to `config` it is the source of its row.
    #[test]
    fn every_declared_flag_is_a_flag_and_the_source_of_its_row() {
        let mut cli = Cli::command();
        // Global flags reach the subcommands when the command is built.
        cli.build();
        let longs = |command: &str| -> Vec<String> {
            cli.find_subcommand(command)
                .unwrap()
                .get_arguments()
                .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
                .collect()
        };
        let (config, train, tune) = (longs("config"), longs("train"), longs("tune"));
        for (name, g) in groups() {
            let mut flags: Vec<&str> = g.scalars.iter().map(|m| m.flag).collect();
            flags.extend(g.maps.iter().map(|m| m.flag));
            flags.extend(g.shorthands.iter().map(|s| s.flag));
            for flag in flags.into_iter().filter(|f| !f.is_empty()) {
                assert!(
                    config.iter().any(|l| l == flag),
                    "{flag} is not a flag of config"
                );
                let of = match name {
                    "train" => Some(&train),
                    "tune" => Some(&tune),
                    _ => None,
                };
                if let Some(of) = of {
                    assert!(
                        of.iter().any(|l| l == flag),
                        "{flag} is not a flag of {name}"
                    );
                }
            }
            for m in &g.scalars {
                for var in m.env {
                    assert!(
                        m.help.contains(var),
                        "the help of {} does not name {var}",
                        m.key
                    );
                }
            }
        }
        for (_, g) in groups() {
            for m in g.scalars.iter().filter(|m| !m.flag.is_empty()) {
                let arg = cli
                    .find_subcommand("config")
                    .unwrap()
                    .get_arguments()
                    .find(|a| a.get_long().map(|l| format!("--{l}")).as_deref() == Some(m.flag))
                    .unwrap();
                let value = m.example.trim_matches(['[', ']', '"']);
                let joined = format!("{}={value}", m.flag);
                let mut argv = vec!["sagetrain", "config", m.flag];
                if arg.is_require_equals_set() {
                    // `--local=container`: the value only joined to the flag.
                    argv[2] = &joined;
                } else if arg.get_action().takes_values() {
                    argv.push(value);
                }
                let cli = <Cli as clap::Parser>::try_parse_from(&argv).unwrap();
                let Command::Config(args) = &cli.command else {
                    panic!()
                };
                let limits = Timeouts::layer(&cli.net, &|_| None).unwrap();
                let (_, rows) = layered(&cli.global, &limits, args, &|_| None, None).unwrap();
                let row = rows.into_iter().find(|r| r.name == m.name()).unwrap();
                assert_eq!(row.source, Some(Source::Flag(m.flag)), "{}", m.key);
            }
        }
    }
}
