//! `sagetrain config`: each effective setting and where it comes from. No AWS call.

use super::Context;
use crate::cli::TrainArgs;
use crate::config::layer::cells;
use crate::error::Result;
use crate::job::settings::TrainSettings;
use crate::job::spec::{validate_settings_at, violations_error};
use crate::ui::Ui;

pub fn run(ctx: &Context, args: &TrainArgs) -> Result<()> {
    let file = ctx.config_file()?;
    let settings = TrainSettings::layer(&ctx.global, args, &*ctx.env, file.as_ref())
        .map_err(violations_error)?;
    let rows = cells(&settings.rows());
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
