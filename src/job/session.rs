//! A shell in a running job (`sagetrain shell`), over remote debugging's SSM channel.
//!
//! Pure: the hosts of a job and the session target of one (`sagemaker-training-job:JOB_algo-N`),
//! the StartSession request (a shell, or one command through `AWS-StartInteractiveCommand`), the
//! Session Manager plugin's version rule and its invocation. The edges: finding the plugin,
//! StartSession / TerminateSession, UpdateTrainingJob to turn remote debugging on, and running
//! the plugin in this terminal, the way the AWS CLI hands a session to it: the response in
//! `AWS_SSM_START_SESSION_RESPONSE` (never on the command line, where `ps` would show its
//! token), then the region, the operation, the profile, the request and the SSM endpoint.

use crate::error::{Error, Kind, Result};
use crate::signals::{self, Signal};
use serde_json::json;
use std::path::PathBuf;

/// The plugin's name on PATH (`.exe` on Windows).
pub const PLUGIN: &str = "session-manager-plugin";
/// Where plugins newer than [`LAST_ARGV_ONLY_VERSION`] read the StartSession response.
pub const RESPONSE_ENV: &str = "AWS_SSM_START_SESSION_RESPONSE";
/// The last plugin version that reads the response only from its first argument.
const LAST_ARGV_ONLY_VERSION: [u64; 4] = [1, 2, 497, 0];
/// The SSM document that runs one command instead of a shell.
pub const COMMAND_DOCUMENT: &str = "AWS-StartInteractiveCommand";

/// What to install when the plugin is missing, for each platform.
pub const INSTALL_HINT: &str = "install the Session Manager plugin, then run the command again:\n\
    Linux (deb):  curl -o smp.deb https://s3.amazonaws.com/session-manager-downloads/plugin/latest/ubuntu_64bit/session-manager-plugin.deb && sudo dpkg -i smp.deb\n\
    Linux (rpm):  sudo yum install -y https://s3.amazonaws.com/session-manager-downloads/plugin/latest/linux_64bit/session-manager-plugin.rpm\n\
    macOS:        brew install --cask session-manager-plugin\n\
    Windows:      https://s3.amazonaws.com/session-manager-downloads/plugin/latest/windows/SessionManagerPluginSetup.exe\n\
    (https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html)";

/// `--host`: `algo-N` (or just `N`), N from 1. The number, or the rule it breaks.
pub fn parse_host(s: &str) -> std::result::Result<u32, String> {
    let digits = s.strip_prefix("algo-").unwrap_or(s);
    match digits.parse::<u32>() {
        Ok(n) if n >= 1 && !digits.starts_with('0') => Ok(n),
        _ => Err(format!(
            "`{s}` is not a host of a training job: hosts are named algo-1, algo-2, ... (one per instance)"
        )),
    }
}

/// The SSM target of a job's host.
pub fn target(job: &str, host: u32) -> String {
    format!("sagemaker-training-job:{job}_algo-{host}")
}

/// The number of hosts (instances) of a described job: its instance count, the selected one of
/// its instance preferences, or the sum of its instance groups.
pub fn host_count(
    d: &aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput,
) -> u32 {
    let Some(rc) = d.resource_config() else {
        return 1;
    };
    let groups: i32 = rc
        .instance_groups()
        .iter()
        .map(|g| g.instance_count().unwrap_or(0))
        .sum();
    let n = rc
        .instance_count()
        .or(rc.selected_instance_count())
        .unwrap_or(groups);
    u32::try_from(n).unwrap_or(0).max(1)
}

/// The refusal of a host the job does not have.
pub fn check_host(job: &str, host: u32, hosts: u32) -> Result<()> {
    if host <= hosts {
        return Ok(());
    }
    let names: Vec<String> = (1..=hosts).map(|h| format!("algo-{h}")).collect();
    Err(Error::usage(format!(
        "--host algo-{host}: training job {job} has {hosts} host{} ({})",
        if hosts == 1 { "" } else { "s" },
        names.join(", ")
    ))
    .with_hint(format!(
        "choose one of them: sagetrain shell {job} --host algo-1"
    )))
}

/// The StartSession request: a shell, or `command` run by [`COMMAND_DOCUMENT`] (its words
/// quoted for the remote shell). In the API's own casing, as the plugin receives it.
pub fn start_request(target: &str, command: &[String]) -> serde_json::Value {
    if command.is_empty() {
        return json!({ "Target": target });
    }
    json!({
        "Target": target,
        "DocumentName": COMMAND_DOCUMENT,
        "Parameters": { "command": [crate::ui::shell_words(command)] },
    })
}

/// Whether a plugin that printed `version` reads the response from [`RESPONSE_ENV`]. A version
/// that cannot be read is taken as an old one (the response then goes as the first argument).
pub fn reads_response_from_env(version: &str) -> bool {
    let parts: Option<Vec<u64>> = version.trim().split('.').map(|p| p.parse().ok()).collect();
    match parts {
        Some(mut v) if !v.is_empty() => {
            v.resize(4, 0);
            v.as_slice() > LAST_ARGV_ONLY_VERSION.as_slice()
        }
        _ => false,
    }
}

/// The SSM endpoint the plugin is told of: the configured one, else the region's.
pub fn ssm_endpoint(region: &str, configured: Option<&str>) -> String {
    match configured {
        Some(url) => url.to_string(),
        None if region.starts_with("cn-") => format!("https://ssm.{region}.amazonaws.com.cn"),
        None => format!("https://ssm.{region}.amazonaws.com"),
    }
}

/// StartSession's answer: what the plugin needs. `token` is a secret: it goes only to the
/// plugin's environment.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    pub token: String,
    pub stream_url: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("token", &"<hidden>")
            .finish_non_exhaustive()
    }
}

/// How the plugin is run: its arguments and the environment it gets on top of sagetrain's.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// The plugin's invocation for `session`, as the AWS CLI makes it.
pub fn invocation(
    session: &Session,
    reads_env: bool,
    region: &str,
    profile: Option<&str>,
    request: &serde_json::Value,
    endpoint: &str,
) -> Invocation {
    let response = json!({
        "SessionId": session.id,
        "TokenValue": session.token,
        "StreamUrl": session.stream_url,
    })
    .to_string();
    let (first, env) = match reads_env {
        true => (
            RESPONSE_ENV.to_string(),
            vec![(RESPONSE_ENV.to_string(), response)],
        ),
        false => (response, vec![]),
    };
    Invocation {
        args: vec![
            first,
            region.to_string(),
            "StartSession".to_string(),
            profile.unwrap_or_default().to_string(),
            request.to_string(),
            endpoint.to_string(),
        ],
        env,
    }
}

/// The plugin on PATH, and its version (`session-manager-plugin --version`). Asked before any
/// AWS call: without it no session can be used.
pub fn find_plugin(env: &dyn Fn(&str) -> Option<String>) -> Result<(PathBuf, String)> {
    let path_var = env("PATH").unwrap_or_default();
    let Some(path) = crate::image::engine::on_path(PLUGIN, &path_var) else {
        return Err(Error::usage(format!(
            "the Session Manager plugin (`{PLUGIN}`) is not on PATH: sagetrain hands the session to it"
        ))
        .with_hint(INSTALL_HINT));
    };
    let out = std::process::Command::new(&path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Error::usage(format!("cannot run {}: {e}", path.display())).with_hint(INSTALL_HINT)
        })?;
    if !out.status.success() {
        return Err(Error::usage(format!(
            "{} --version failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .with_hint(INSTALL_HINT));
    }
    Ok((
        path,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

/// ssm:StartSession. The errors a first session meets are named with their fix.
pub async fn start(
    ssm: &aws_sdk_ssm::Client,
    request: &serde_json::Value,
    job: &str,
) -> Result<Session> {
    let target = request["Target"].as_str().unwrap_or_default();
    let mut call = ssm
        .start_session()
        .target(target)
        .reason(format!("sagetrain shell {job}"));
    if let Some(doc) = request["DocumentName"].as_str() {
        call = call.document_name(doc);
    }
    if let Some(params) = request["Parameters"].as_object() {
        for (k, v) in params {
            let values = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            call = call.parameters(k, values);
        }
    }
    let out = call.send().await.map_err(|e| {
        let code = crate::aws::error_code(&e).unwrap_or_default();
        let err = crate::aws::aws_error("ssm:StartSession", &e);
        match code.as_str() {
            "TargetNotConnected" => Error::aws(format!(
                "the SSM agent of {target} is not connected (TargetNotConnected)"
            ))
            .with_hint(format!(
                "remote debugging turned on less than a minute ago, or the container is still starting: try again in a minute (`sagetrain status {job}` shows its phase)"
            )),
            c if c.contains("AccessDenied") => err.with_hint(
                "your credentials need ssm:StartSession and ssm:TerminateSession (examples/iam/developer-policy.json grants them for training jobs); `sagetrain doctor` with remote_debug = true checks it",
            ),
            _ => err,
        }
    })?;
    let (Some(id), Some(token), Some(stream_url)) =
        (out.session_id(), out.token_value(), out.stream_url())
    else {
        return Err(Error::aws(
            "ssm:StartSession answered without a session id, token or stream URL",
        ));
    };
    Ok(Session {
        id: id.to_string(),
        token: token.to_string(),
        stream_url: stream_url.to_string(),
    })
}

/// ssm:TerminateSession, for a session the plugin never took (best effort: the agent would end
/// it by itself after its idle time).
pub async fn terminate(ssm: &aws_sdk_ssm::Client, id: &str) {
    if let Err(e) = ssm.terminate_session().session_id(id).send().await {
        tracing::warn!(
            "{}",
            crate::aws::aws_error("ssm:TerminateSession", &e).message
        );
    }
}

/// Turn remote debugging on for a running job (UpdateTrainingJob).
pub async fn enable(sm: &aws_sdk_sagemaker::Client, job: &str) -> Result<()> {
    sm.update_training_job()
        .training_job_name(job)
        .remote_debug_config(
            aws_sdk_sagemaker::types::RemoteDebugConfigForUpdate::builder()
                .enable_remote_debug(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| crate::aws::aws_error("sagemaker:UpdateTrainingJob", &e))?;
    Ok(())
}

/// Run the plugin in this terminal until the session ends; its exit code is the command's.
/// Ctrl-C (and the other keys a terminal turns into signals) are the remote shell's while it
/// runs: sagetrain leaves them to the plugin. SIGTERM is passed on to the plugin, which ends
/// the session, and then ends sagetrain (143). A plugin that cannot be started leaves its
/// session to TerminateSession.
pub async fn run_plugin(
    plugin: &std::path::Path,
    inv: &Invocation,
    ssm: &aws_sdk_ssm::Client,
    session: &Session,
) -> Result<i32> {
    let _keys = signals::leave_interrupts_to_child();
    let mut claim = signals::claim();
    let spawned = tokio::process::Command::new(plugin)
        .args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .kill_on_drop(false)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            // A session the plugin never took would wait for the agent's idle timeout.
            terminate(ssm, &session.id).await;
            return Err(
                Error::usage(format!("cannot start {}: {e}", plugin.display()))
                    .with_hint(INSTALL_HINT),
            );
        }
    };
    let status = tokio::select! {
        s = child.wait() => s?,
        sig = claim.recv() => {
            forward(&child, sig);
            let _ = child.wait().await;
            return Err(Error::new(sig.kind(), format!("{}: the session was ended", sig.name())));
        }
    };
    Ok(exit_code(status))
}

#[cfg(unix)]
fn forward(child: &tokio::process::Child, sig: Signal) {
    let n = match sig {
        Signal::Interrupt => libc::SIGINT,
        Signal::Terminate => libc::SIGTERM,
    };
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own child's pid, which it still is until it is waited for.
        unsafe {
            libc::kill(pid as libc::pid_t, n);
        }
    }
}

#[cfg(not(unix))]
fn forward(_child: &tokio::process::Child, _sig: Signal) {}

/// A child's exit status as a shell reports it (128 + the signal that ended it).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    status.code().unwrap_or(1)
}

/// The error that ends sagetrain with the remote command's exit code, saying nothing more.
pub fn passed_through(code: i32) -> Error {
    Error::new(Kind::PassThrough(code), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_algo_n_from_one() {
        assert_eq!(parse_host("algo-2"), Ok(2));
        assert_eq!(parse_host("3"), Ok(3));
        for bad in ["algo-0", "algo-", "algo-02", "host-1", "", "-1", "algo-x"] {
            let e = parse_host(bad).unwrap_err();
            assert!(e.contains("algo-1, algo-2"), "{bad}: {e}");
        }
        assert_eq!(target("unet-1", 2), "sagemaker-training-job:unet-1_algo-2");
    }

    #[test]
    fn a_host_beyond_the_instance_count_is_refused_naming_the_hosts() {
        assert!(check_host("j", 2, 2).is_ok());
        let e = check_host("j", 3, 2).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(
            e.message.contains("has 2 hosts (algo-1, algo-2)"),
            "{}",
            e.message
        );
        let e = check_host("j", 2, 1).unwrap_err();
        assert!(e.message.contains("has 1 host (algo-1)"), "{}", e.message);
    }

    #[test]
    fn the_host_count_comes_from_the_instances_of_the_job() {
        use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
        use aws_sdk_sagemaker::types::{InstanceGroup, ResourceConfig, TrainingInstanceType};
        let d = |rc: ResourceConfig| {
            DescribeTrainingJobOutput::builder()
                .resource_config(rc)
                .build()
        };
        assert_eq!(
            host_count(&d(ResourceConfig::builder().instance_count(3).build())),
            3
        );
        assert_eq!(
            host_count(&d(ResourceConfig::builder()
                .selected_instance_count(2)
                .build())),
            2
        );
        let g = |n| {
            InstanceGroup::builder()
                .instance_type(TrainingInstanceType::MlG5Xlarge)
                .instance_count(n)
                .instance_group_name("g")
                .build()
        };
        assert_eq!(
            host_count(&d(ResourceConfig::builder()
                .instance_groups(g(2))
                .instance_groups(g(1))
                .build())),
            3
        );
        assert_eq!(host_count(&DescribeTrainingJobOutput::builder().build()), 1);
    }

    #[test]
    fn a_shell_is_the_default_document_and_a_command_is_quoted_for_the_remote_shell() {
        let t = target("j", 1);
        assert_eq!(start_request(&t, &[]), json!({"Target": t}));
        let cmd: Vec<String> = ["nvidia-smi", "-q", "it's here", "a b", ""]
            .map(String::from)
            .to_vec();
        assert_eq!(
            start_request(&t, &cmd),
            json!({
                "Target": t,
                "DocumentName": "AWS-StartInteractiveCommand",
                "Parameters": {"command": [r#"nvidia-smi -q 'it'\''s here' 'a b' ''"#]},
            })
        );
    }

    #[test]
    fn plugins_after_1_2_497_read_the_response_from_the_environment() {
        assert!(reads_response_from_env("1.2.694.0\n"));
        assert!(reads_response_from_env("1.2.497.1"));
        assert!(reads_response_from_env("1.3"));
        assert!(!reads_response_from_env("1.2.497.0"));
        assert!(!reads_response_from_env("1.1.61.0"));
        assert!(!reads_response_from_env("unknown"));
        assert!(!reads_response_from_env(""));
    }

    #[test]
    fn the_plugin_gets_the_response_in_its_environment_and_the_request_as_an_argument() {
        let s = Session {
            id: "me-0123".into(),
            token: "TOKEN-SECRET".into(),
            stream_url: "wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/me-0123".into(),
        };
        let req = start_request(&target("j", 1), &[]);
        let endpoint = ssm_endpoint("eu-west-1", None);
        assert_eq!(endpoint, "https://ssm.eu-west-1.amazonaws.com");
        let inv = invocation(&s, true, "eu-west-1", Some("dev"), &req, &endpoint);
        assert_eq!(
            inv.args,
            [
                RESPONSE_ENV,
                "eu-west-1",
                "StartSession",
                "dev",
                r#"{"Target":"sagemaker-training-job:j_algo-1"}"#,
                "https://ssm.eu-west-1.amazonaws.com",
            ]
        );
        assert!(
            !inv.args.iter().any(|a| a.contains("TOKEN-SECRET")),
            "never on the command line"
        );
        let (k, v) = &inv.env[0];
        assert_eq!(k, RESPONSE_ENV);
        let v: serde_json::Value = serde_json::from_str(v).unwrap();
        assert_eq!(v["TokenValue"], "TOKEN-SECRET");
        assert_eq!(v["SessionId"], "me-0123");
        // An old plugin takes the response as its first argument; no profile is an empty one.
        let old = invocation(&s, false, "eu-west-1", None, &req, &endpoint);
        assert!(old.args[0].contains("\"StreamUrl\""));
        assert_eq!(old.args[3], "");
        assert!(old.env.is_empty());
        assert!(!format!("{s:?}").contains("TOKEN-SECRET"));
        assert_eq!(
            ssm_endpoint("cn-north-1", None),
            "https://ssm.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            ssm_endpoint("x", Some("http://127.0.0.1:1")),
            "http://127.0.0.1:1"
        );
    }

    #[test]
    fn a_missing_plugin_is_named_with_the_install_hint_of_each_platform() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let e = find_plugin(&|k| (k == "PATH").then(|| path.clone())).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(
            e.message.contains("session-manager-plugin"),
            "{}",
            e.message
        );
        let hint = e.hint.unwrap();
        for os in ["Linux (deb)", "Linux (rpm)", "macOS", "Windows"] {
            assert!(hint.contains(os), "{hint}");
        }
    }

    #[test]
    fn a_passed_through_code_is_the_exit_code_and_says_nothing() {
        let e = passed_through(3);
        assert_eq!(e.exit_code(), 3);
        assert!(e.message.is_empty());
    }
}
