//! `train --local` with a real container engine (podman, with the runtime and limits that
//! `scripts/test` writes into `CONTAINERS_CONF`): a `FROM scratch` image with busybox-static,
//! built here, whose entry checks SageMaker's contract files. A missing engine or busybox
//! fails these tests; they never skip.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The entry: checks the contract, then writes a model; `fail` makes it fail with a reason,
/// `wait` makes it wait for SIGTERM (and write a marker when it comes).
const ENTRY: &str = r#"#!/bin/busybox sh
set -e
ml=/opt/ml
[ "$1" = train ] || { echo "argument is '$1', not train" >"$ml/output/failure"; exit 9; }
hp=$ml/input/config/hyperparameters.json
grep -q '"epochs": "3"' $hp || { echo "epochs is not the string 3: $(cat $hp)" >"$ml/output/failure"; exit 8; }
rc=$ml/input/config/resourceconfig.json
grep -q '"current_host": "algo-' $rc || { echo "bad resourceconfig" >"$ml/output/failure"; exit 7; }
grep -q '"network_interface_name": "eth0"' $ml/input/config/resourceconfig.json || exit 7
grep -q '"train"' $ml/input/config/inputdataconfig.json || exit 7
[ "$(cat $ml/input/data/train/sample.txt)" = "pixels" ] || { echo "channel train not mounted" >"$ml/output/failure"; exit 6; }
if touch $ml/input/data/train/x 2>/dev/null; then echo "channel is writable" >"$ml/output/failure"; exit 6; fi
echo "MODE=$MODE"
if grep -q '"net": ' $hp; then
  port=$(sed -n 's/.*"net": "\([0-9]*\)".*/\1/p' $hp)
  if grep -q '"current_host": "algo-1"' $rc; then
    nc -l -p "$port" >"$ml/model/got.txt"
    [ "$(cat $ml/model/got.txt)" = "from algo-2" ] || { echo "algo-1 got '$(cat $ml/model/got.txt)'" >"$ml/output/failure"; exit 2; }
  else
    i=0
    until echo "from algo-2" | nc algo-1 "$port"; do
      i=$((i+1)); [ $i -lt 200 ] || { echo "algo-1 never answered" >"$ml/output/failure"; exit 2; }
      sleep 0.1
    done
  fi
  echo "net ok"
  exit 0
fi
if grep -q '"fail": "yes"' $hp; then
  echo "learning rate too high" >"$ml/output/failure"
  exit 3
fi
if grep -q '"fail_host": "algo-1"' $hp && grep -q '"current_host": "algo-1"' $rc; then
  echo "algo-1 broke" >"$ml/output/failure"
  exit 3
fi
if grep -q '"wait": "yes"' $hp || grep -q '"fail_host"' $hp; then
  trap 'echo got TERM >"$ml/output/data/term"; exit 0' TERM
  touch "$ml/output/data/started"
  i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  exit 4
fi
echo "epoch 1 loss=0.9"
echo "epoch 2 loss=0.5"
echo weights >"$ml/model/model.pth"
echo '{"dice":0.9}' >"$ml/output/data/metrics.json"
echo "trained"
"#;

/// A sandbox whose spawned processes see the engine's configuration.
pub(crate) fn sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        sb.set("CONTAINERS_CONF", &conf);
    }
    sb.write("project/data/train/sample.txt", "pixels");
    sb
}

/// Build the test image with podman from a temporary context; returns its tag.
pub(crate) fn image(sb: &Sandbox) -> String {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox (busybox-static) is needed: scripts/test installs it"
    );
    let ctx = sb.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(busybox, ctx.join("busybox")).unwrap();
    std::fs::write(ctx.join("train"), ENTRY).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ctx.join("train"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // For code mode: /bin/sh runs the launcher, and a `python3` that runs its script with sh.
    std::fs::write(ctx.join("python3"), "#!/bin/sh\nexec /bin/sh \"$@\"\n").unwrap();
    std::fs::set_permissions(ctx.join("python3"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nCOPY python3 /bin/python3\n\
         COPY train /bin/train\nENTRYPOINT [\"/bin/train\"]\n",
    )
    .unwrap();
    let tag = format!("localhost/sagetrain-local-test:{}", unique());
    let out = Command::new("podman")
        .args(["build", "-q", "-t", &tag])
        .arg(&ctx)
        .envs(sb.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("podman is needed for the local-run tests: scripts/test installs it");
    assert!(
        out.status.success(),
        "podman build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tag
}

pub(crate) fn local_args<'a>(image: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--local",
        "--engine",
        "podman",
        "--image",
        image,
        "--train",
        "data/train",
        "--epochs",
        "3",
        "--env",
        "MODE=fast",
    ];
    a.extend_from_slice(extra);
    a
}

fn tar_names(p: &Path) -> Vec<String> {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap());
    let mut n: Vec<String> = tar::Archive::new(gz)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    n.sort();
    n
}

#[test]
fn local_run_gets_the_contract_and_its_model_is_packed() {
    let sb = sandbox();
    let img = image(&sb);
    let r = sb.run(&local_args(&img, &["-o", "json"])).ok();
    let out = r.json();
    assert_eq!(out["exit_code"], 0, "{}", r.stderr);
    assert!(r.stderr.contains("[algo-1] trained"), "{}", r.stderr);
    assert!(r.stderr.contains("[algo-1] MODE=fast"), "{}", r.stderr);
    let folder = PathBuf::from(out["folder"].as_str().unwrap());
    assert!(folder.starts_with(sb.project().join(".sagetrain/local")));
    assert_eq!(tar_names(&folder.join("model.tar.gz")), ["model.pth"]);
    assert_eq!(tar_names(&folder.join("output.tar.gz")), ["metrics.json"]);
    let log = std::fs::read_to_string(folder.join("train.log")).unwrap();
    assert!(log.contains("[algo-1] trained"), "{log}");
    let hp: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(folder.join("input/config/hyperparameters.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(hp, serde_json::json!({"epochs": "3"}));
    // The channel was mounted, never copied.
    assert!(!folder.join("input/data/train/sample.txt").exists());
}

#[test]
fn a_failing_entry_exits_5_with_its_failure_reason() {
    let sb = sandbox();
    let img = image(&sb);
    let r = sb
        .run(&local_args(&img, &["-H", "fail=yes", "-o", "json"]))
        .code(5)
        .stderr_has("failed on algo-1 (exit 3): learning rate too high");
    let out = r.json();
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["failure_reason"], "learning rate too high");
}

#[test]
fn dry_run_prints_the_command_and_the_tree_and_runs_nothing() {
    let sb = sandbox();
    let r = sb
        .run(&local_args(
            "some-image:dev",
            &["--dry-run", "--name", "dry-1"],
        ))
        .ok();
    for needle in [
        "podman run --rm --name dry-1-algo-1",
        "/opt/ml/input/data/train:ro",
        "\"epochs\": \"3\"",
        "some-image:dev train",
    ] {
        assert!(r.stdout.contains(needle), "{needle}: {}", r.stdout);
    }
    assert!(!sb.project().join(".sagetrain/local/dry-1").exists());
}

#[test]
fn local_runs_are_validated_first_and_need_an_image_the_engine_has() {
    let sb = sandbox();
    sb.run(&local_args(
        "x:dev",
        &["--channel", "val=s3://bucket-1/val/"],
    ))
    .code(2)
    .stderr_has("--channel val");
    sb.run(&local_args("x:dev", &["--instance-count", "0"]))
        .code(2);
    sb.run(&local_args("x:dev", &["--wait"]))
        .code(2)
        .stderr_has("--local runs it here");
    sb.run(&local_args("localhost/no-such-image:none", &[]))
        .code(2)
        .stderr_has("has no such image");
    assert!(!sb.project().join(".sagetrain/local").exists());
}

#[test]
fn sigterm_reaches_the_entry_and_the_run_exits_143() {
    let sb = sandbox();
    let img = image(&sb);
    let args = local_args(&img, &["-H", "wait=yes", "--name", "term-1"]);
    let child = crate::data_e2e::spawn(&sb, &args);
    let tree = sb.project().join(".sagetrain/local/term-1");
    crate::data_e2e::wait_until("the entry to start", 30, || {
        tree.join("output/data/started").exists()
    });
    let (code, stderr) = crate::data_e2e::signal_and_wait(child, "-TERM");
    assert_eq!(code, Some(143), "{stderr}");
    assert!(
        stderr.contains("passing SIGTERM to the containers"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(tree.join("output/data/term")).unwrap(),
        "got TERM\n"
    );
}

#[test]
fn two_hosts_reach_each_other_over_loopback() {
    let sb = sandbox();
    let img = image(&sb);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let net = format!("net={port}");
    let r = sb
        .run(&local_args(
            &img,
            &["--instance-count", "2", "-H", &net, "-o", "json"],
        ))
        .ok();
    let out = r.json();
    assert_eq!(out["exit_code"], 0, "{}", r.stderr);
    assert!(r.stderr.contains("[algo-2] net ok"), "{}", r.stderr);
    assert!(r.stderr.contains("[algo-1] net ok"), "{}", r.stderr);
    let folder = PathBuf::from(out["folder"].as_str().unwrap());
    let rc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(folder.join("algo-2/input/config/resourceconfig.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rc["current_host"], "algo-2");
    assert_eq!(rc["hosts"], serde_json::json!(["algo-1", "algo-2"]));
    assert_eq!(tar_names(&folder.join("model.tar.gz")), ["got.txt"]);
}

#[test]
fn the_first_host_to_fail_ends_the_others_and_is_the_verdict() {
    let sb = sandbox();
    let img = image(&sb);
    let r = sb
        .run(&local_args(
            &img,
            &[
                "--instance-count",
                "2",
                "-H",
                "fail_host=algo-1",
                "-o",
                "json",
            ],
        ))
        .code(5)
        .stderr_has("failed on algo-1 (exit 3): algo-1 broke");
    let out = r.json();
    assert_eq!(out["failed_host"], "algo-1");
    let folder = PathBuf::from(out["folder"].as_str().unwrap());
    // algo-2 was waiting: it got SIGTERM when algo-1 failed.
    assert_eq!(
        std::fs::read_to_string(folder.join("algo-2/output/data/term")).unwrap(),
        "got TERM\n"
    );
}

/// Code mode: the code folder is the `code` channel and the real launcher runs its entry.
#[test]
fn code_mode_runs_the_entry_through_the_real_launcher() {
    let sb = sandbox();
    let img = image(&sb);
    sb.write(
        "project/src/train.py",
        "echo \"entry in $(pwd) with $1\"\necho from-code >/opt/ml/model/from-code.txt\n",
    );
    let r = sb
        .run(&local_args(&img, &["--source", "src", "-o", "json"]))
        .ok();
    assert!(
        r.stderr
            .contains("[algo-1] entry in /opt/ml/input/data/code"),
        "{}",
        r.stderr
    );
    let out = r.json();
    let folder = PathBuf::from(out["folder"].as_str().unwrap());
    assert_eq!(tar_names(&folder.join("model.tar.gz")), ["from-code.txt"]);
    // The launcher is not put into the user's folder.
    assert!(!sb.project().join("src/.sagetrain-launcher.sh").exists());
}
