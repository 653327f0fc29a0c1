//! `sagetrain shell`, end to end against the SageMaker stand-in (the emulator has neither
//! UpdateTrainingJob nor SSM), which answers SSM's StartSession too, with a stub
//! `session-manager-plugin` on PATH that records its arguments and environment and exits with
//! the code it is given.

use crate::data_e2e::{signal_and_wait, spawn, wait_until};
use crate::fake_sagemaker::{self, job_json, FakeSageMaker, Stop};
use crate::follow_e2e::{fake_sandbox, TRAINING};
use crate::harness::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TOKEN: &str = "AAEAAStubSessionTokenValue0123456789abcdefghijklmnopqrstuvwxyz";

/// The stub plugin: `--version` prints $STUB_VERSION; a session records its arguments (one a
/// line) and $AWS_SSM_START_SESSION_RESPONSE, runs $STUB_RUN if set, and exits $STUB_EXIT.
const STUB: &str = r#"#!/bin/sh
if [ "$1" = "--version" ]; then echo "${STUB_VERSION:-1.2.694.0}"; exit 0; fi
for a in "$@"; do printf '%s\n' "$a"; done > "$STUB_RECORD/args"
printf '%s' "$AWS_SSM_START_SESSION_RESPONSE" > "$STUB_RECORD/env"
if [ -n "$STUB_RUN" ]; then eval "$STUB_RUN"; fi
exit "${STUB_EXIT:-0}"
"#;

fn running_job(name: &str, remote_debug: bool, hosts: u32) -> serde_json::Value {
    let mut j = job_json(name, "InProgress", "Training", &[TRAINING], None);
    j["ResourceConfig"]["InstanceCount"] = json!(hosts);
    if remote_debug {
        j["RemoteDebugConfig"] = json!({"EnableRemoteDebug": true});
    }
    j
}

fn fake(describe: serde_json::Value) -> FakeSageMaker {
    fake_sagemaker::start_with(
        describe,
        Stop::Accept,
        vec![
            (
                "StartSession",
                json!({"SessionId": "dev-0a1b2c3d", "TokenValue": TOKEN, "StreamUrl": "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/dev-0a1b2c3d"}),
            ),
            ("TerminateSession", json!({"SessionId": "dev-0a1b2c3d"})),
            (
                "UpdateTrainingJob",
                json!({"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x"}),
            ),
        ],
    )
}

/// A sandbox talking to `fake`, with the stub plugin first on PATH; the plugin's records go to
/// the returned folder.
fn with_plugin(fake: &FakeSageMaker) -> (Sandbox, PathBuf) {
    let mut sb = fake_sandbox(&fake.url);
    let bin = sb.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let plugin = bin.join("session-manager-plugin");
    std::fs::write(&plugin, STUB).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let record = sb.dir.path().join("record");
    std::fs::create_dir_all(&record).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    sb.set("PATH", &path)
        .set("STUB_RECORD", &record.display().to_string());
    (sb, record)
}

fn recorded_args(record: &Path) -> Vec<String> {
    std::fs::read_to_string(record.join("args"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_command_runs_on_the_host_asked_for_and_its_exit_code_is_sagetrains() {
    let fake = fake(running_job("unet-dbg", true, 2));
    let (mut sb, record) = with_plugin(&fake);
    sb.set("STUB_EXIT", "3");
    let r = sb
        .run(&[
            "shell",
            "unet-dbg",
            "--host",
            "algo-2",
            "--",
            "nvidia-smi",
            "-q",
            "a b",
        ])
        .code(3);
    assert!(
        !r.stderr.contains("error"),
        "a passed-through code says nothing: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "with algo-2 of unet-dbg (SSM target sagemaker-training-job:unet-dbg_algo-2)"
        ),
        "{}",
        r.stderr
    );
    // What StartSession was asked (an independent read: the stand-in's record).
    let calls = fake.calls_to("StartSession");
    assert_eq!(calls.len(), 1, "{:?}", fake.targets());
    let body: serde_json::Value = serde_json::from_str(&calls[0]).unwrap();
    assert_eq!(body["Target"], "sagemaker-training-job:unet-dbg_algo-2");
    assert_eq!(body["DocumentName"], "AWS-StartInteractiveCommand");
    assert_eq!(
        body["Parameters"],
        json!({"command": ["nvidia-smi -q 'a b'"]})
    );
    // The plugin got what the AWS CLI gives it; the token only in its environment.
    let args = recorded_args(&record);
    assert_eq!(args.len(), 6, "{args:?}");
    assert_eq!(
        args[..4],
        [
            "AWS_SSM_START_SESSION_RESPONSE",
            "us-east-1",
            "StartSession",
            ""
        ]
    );
    let request: serde_json::Value = serde_json::from_str(&args[4]).unwrap();
    assert_eq!(request["Target"], "sagemaker-training-job:unet-dbg_algo-2");
    assert_eq!(request["Parameters"]["command"][0], "nvidia-smi -q 'a b'");
    assert_eq!(args[5], fake.url, "the SSM endpoint in effect");
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(record.join("env")).unwrap()).unwrap();
    assert_eq!(env["SessionId"], "dev-0a1b2c3d");
    assert_eq!(env["TokenValue"], TOKEN);
    assert!(!args.iter().any(|a| a.contains(TOKEN)));
    assert!(!r.stderr.contains(TOKEN) && !r.stdout.contains(TOKEN));

    // A shell on the first host by default, its exit 0 sagetrain's; with a profile, the plugin
    // is told its name.
    sb.set("STUB_EXIT", "0");
    sb.write("home/.aws/config", "[profile dev]\nregion = us-east-1\n");
    sb.run(&["shell", "unet-dbg", "--profile", "dev", "-v"])
        .ok();
    let body: serde_json::Value = serde_json::from_str(&fake.calls_to("StartSession")[1]).unwrap();
    assert_eq!(body["Target"], "sagemaker-training-job:unet-dbg_algo-1");
    assert!(
        body.get("DocumentName").is_none(),
        "a shell is SSM's default document"
    );
    let args = recorded_args(&record);
    assert_eq!(args[3], "dev");
    assert!(
        fake.calls_to("TerminateSession").is_empty(),
        "the plugin ends its session"
    );
}

#[test]
fn an_old_plugin_gets_the_response_as_its_first_argument() {
    let fake = fake(running_job("unet-dbg", true, 1));
    let (mut sb, record) = with_plugin(&fake);
    sb.set("STUB_VERSION", "1.2.463.0");
    sb.run(&["shell", "unet-dbg"]).ok();
    let args = recorded_args(&record);
    let response: serde_json::Value = serde_json::from_str(&args[0]).unwrap();
    assert!(response["StreamUrl"]
        .as_str()
        .unwrap()
        .starts_with("wss://"));
    assert_eq!(std::fs::read_to_string(record.join("env")).unwrap(), "");
}

#[test]
fn every_refusal_names_its_fix_and_exits_2_before_any_session() {
    // No plugin on PATH: refused before any call, with the install hint of each platform.
    let fake_ = fake(running_job("unet-dbg", true, 2));
    let mut sb = fake_sandbox(&fake_.url);
    let empty = sb.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    sb.set("PATH", &empty.display().to_string());
    let r = sb.run(&["shell", "unet-dbg"]).code(2);
    for want in [
        "(`session-manager-plugin`) is not on PATH",
        "Linux (deb)",
        "macOS",
        "Windows",
    ] {
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
    }
    assert!(fake_.targets().is_empty(), "{:?}", fake_.targets());

    let (sb, _) = with_plugin(&fake_);
    // A host name that is not one, before any call; a host the job does not have, after.
    sb.run(&["shell", "unet-dbg", "--host", "worker-2"])
        .code(2)
        .stderr_has("--host: `worker-2` is not a host");
    assert!(fake_.targets().is_empty());
    sb.run(&["shell", "unet-dbg", "--host", "algo-3"])
        .code(2)
        .stderr_has("has 2 hosts (algo-1, algo-2)");
    assert!(fake_.calls_to("StartSession").is_empty());

    // Remote debugging off: the fix is --enable.
    let off = fake(running_job("unet-plain", false, 1));
    let (sb, _) = with_plugin(&off);
    sb.run(&["shell", "unet-plain"])
        .code(2)
        .stderr_has("created without remote debugging")
        .stderr_has("sagetrain shell --enable unet-plain");
    assert!(off.calls_to("StartSession").is_empty());

    // A job that is not running.
    let mut done = job_json("unet-done", "Completed", "Completed", &[TRAINING], None);
    done["RemoteDebugConfig"] = json!({"EnableRemoteDebug": true});
    let done = fake(done);
    let (sb, _) = with_plugin(&done);
    sb.run(&["shell", "unet-done"])
        .code(2)
        .stderr_has("training job unet-done is Completed: a shell needs a running job")
        .stderr_has("sagetrain train --from unet-done --remote-debug");
    sb.run(&["shell", "--enable", "unet-done"])
        .code(2)
        .stderr_has("is Completed");
    assert!(
        done.calls_to("StartSession").is_empty() && done.calls_to("UpdateTrainingJob").is_empty()
    );
}

#[test]
fn an_agent_not_yet_connected_is_an_aws_error_that_says_to_wait() {
    let f = fake_sagemaker::start_with(
        running_job("unet-dbg", true, 1),
        Stop::Accept,
        vec![(
            "StartSession",
            json!({"__type": "TargetNotConnected", "message": "sagemaker-training-job:unet-dbg_algo-1 is not connected."}),
        )],
    );
    let (sb, record) = with_plugin(&f);
    sb.run(&["shell", "unet-dbg"])
        .code(4)
        .stderr_has("not connected (TargetNotConnected)")
        .stderr_has("try again in a minute");
    assert!(
        recorded_args(&record).is_empty(),
        "no plugin without a session"
    );
}

#[test]
fn enable_turns_remote_debugging_on_for_a_running_job_once() {
    let off = fake(running_job("unet-plain", false, 1));
    let mut sb = fake_sandbox(&off.url);
    // --enable needs no plugin.
    sb.set("PATH", "/nonexistent");
    let r = sb.run(&["shell", "--enable", "unet-plain"]).ok();
    assert!(
        r.stdout
            .contains("remote debugging turned on for unet-plain; the session may take a minute"),
        "{}",
        r.stdout
    );
    let calls = off.calls_to("UpdateTrainingJob");
    assert_eq!(calls.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&calls[0]).unwrap();
    assert_eq!(
        body,
        json!({"TrainingJobName": "unet-plain", "RemoteDebugConfig": {"EnableRemoteDebug": true}})
    );

    let on = fake(running_job("unet-dbg", true, 1));
    let sb = fake_sandbox(&on.url);
    let j = sb
        .run(&["shell", "--enable", "unet-dbg", "-o", "json"])
        .ok()
        .json();
    assert_eq!(
        j,
        json!({"job_name": "unet-dbg", "remote_debug": true, "changed": false})
    );
    assert!(
        on.calls_to("UpdateTrainingJob").is_empty(),
        "already on: nothing to change"
    );

    let mut isolated = running_job("unet-iso", false, 1);
    isolated["EnableNetworkIsolation"] = json!(true);
    let iso = fake(isolated);
    fake_sandbox(&iso.url)
        .run(&["shell", "--enable", "unet-iso"])
        .code(2)
        .stderr_has("network isolation");
    assert!(iso.calls_to("UpdateTrainingJob").is_empty());

    // --enable and a command do not go together.
    sb.run(&["shell", "--enable", "unet-dbg", "--", "ls"])
        .code(2);
}

#[cfg(unix)]
#[test]
fn ctrl_c_is_left_to_the_session_and_sigterm_is_passed_to_the_plugin() {
    let fake = fake(running_job("unet-dbg", true, 1));
    let (mut sb, record) = with_plugin(&fake);
    let marker = record.join("signal");
    // The plugin waits (up to 20 s) for a TERM, which it records before it ends.
    sb.set(
        "STUB_RUN",
        &format!(
            "trap 'echo TERM > {m}; exit 0' TERM; echo ready > {m}.ready; i=0; while [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done",
            m = marker.display()
        ),
    );
    let mut child = spawn(&sb, &["shell", "unet-dbg"]);
    let ready = marker.with_extension("ready");
    wait_until("the plugin to start", 20, || ready.exists());
    // Ctrl-C of sagetrain alone (a terminal would give it to the plugin too): not an interrupt.
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "Ctrl-C did not end sagetrain"
    );
    let (code, stderr) = signal_and_wait(child, "-TERM");
    assert_eq!(code, Some(143), "{stderr}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "TERM");
    assert!(
        stderr.contains("SIGTERM: the session was ended"),
        "{stderr}"
    );
}
