//! Where and as whom AWS is called: the region, the profile and the endpoint, the same for
//! every command, declared once and layered flag > environment > `sagetrain.toml` (the
//! endpoint: flag > environment). [`crate::aws::Aws::load_with_env`] turns them into the one
//! SDK configuration.

use crate::config::layer::{declare, Text};
use crate::config::Violation;
use std::sync::LazyLock;

declare! {
    /// The connection flags, global to every command.
    args ConnectionArgs {}
    /// The connection settings, each with its source; a region not set here may come from
    /// the AWS profile.
    settings Connection {}
    job ();
    file_section None;
    scalars {
        /// AWS region of the job [env: AWS_REGION, AWS_DEFAULT_REGION]
        region: Option<String> = Text [long = "region", global = true, value_name = "REGION"] {
            env: &["AWS_REGION", "AWS_DEFAULT_REGION"],
            example: "\"eu-west-1\"",
        }
        /// AWS profile for your credentials [env: AWS_PROFILE]
        profile: Option<String> = Text [long = "profile", global = true, value_name = "NAME"] {
            env: &["AWS_PROFILE"],
            example: "\"ml-dev\"",
        }
        /// Send every AWS request to this endpoint (e.g. a local emulator) [env: AWS_ENDPOINT_URL]
        endpoint_url: Option<String> = Text [long = "endpoint-url", global = true, value_name = "URL"] {
            env: &["AWS_ENDPOINT_URL"],
            in_file: false,
            example: "\"http://127.0.0.1:5000\"",
        }
    }
}

static REGION: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$").expect("valid regex"));

/// An AWS region name such as `eu-west-1`.
pub fn check_region(region: &str) -> std::result::Result<(), String> {
    if REGION.is_match(region) {
        Ok(())
    } else {
        Err(format!("`{region}` is not an AWS region (e.g. eu-west-1)"))
    }
}

impl Connection {
    /// The rules of the region and the endpoint.
    pub fn check(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        if let Some(r) = &self.region {
            if let Err(rule) = check_region(&r.value) {
                v.push(Violation::new(r.source.name_for(None), rule));
            }
        }
        if let Some(e) = &self.endpoint_url {
            if !(e.value.starts_with("http://") || e.value.starts_with("https://")) {
                v.push(Violation::new(
                    e.source.name_for(None),
                    format!("`{}` is not an http:// or https:// URL", e.value),
                ));
            }
        }
        v
    }

    /// Layered and checked: what every command runs first.
    pub fn layer_checked(
        args: &ConnectionArgs,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&crate::config::LoadedFile>,
    ) -> std::result::Result<Connection, Vec<Violation>> {
        let c = Connection::layered(args, env, file)?;
        let v = c.check();
        if v.is_empty() {
            Ok(c)
        } else {
            Err(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LoadedFile, Source};
    use std::path::Path;

    #[test]
    fn connection_settings_layer_flag_env_file_and_are_checked() {
        let f = LoadedFile::parse(
            Path::new("/p/s.toml"),
            "region = \"eu-west-1\"\nprofile = \"p\"\n",
        )
        .unwrap();
        let g = ConnectionArgs::default();
        let env = |k: &str| (k == "AWS_PROFILE").then(|| "envp".to_string());
        let c = Connection::layered(&g, &env, Some(&f)).unwrap();
        assert_eq!(
            c.region.unwrap().source,
            Source::file(Path::new("/p/s.toml"), "region")
        );
        assert_eq!(c.profile.unwrap().source, Source::Env("AWS_PROFILE"));
        let bad = Connection::layer_checked(
            &ConnectionArgs {
                region: Some("Europe".into()),
                endpoint_url: Some("localhost:5000".into()),
                ..g
            },
            &|_| None,
            None,
        )
        .unwrap_err();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0]
            .to_string()
            .starts_with("--region: `Europe` is not an AWS region"));
    }
}
