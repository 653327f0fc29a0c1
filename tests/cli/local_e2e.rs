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
if [ -d $ml/input/data/val ]; then
  line=""
  for f in $(find $ml/input/data/val -type f | sort); do line="$line ${f#$ml/input/data/val/}=$(cat $f)"; done
  echo "val:$line"
fi
if grep -q '"want_sha": ' $hp; then
  want=$(sed -n 's/.*"want_sha": "\([0-9a-f]*\)".*/\1/p' $hp)
  got=$(printf %s "$WANDB_API_KEY" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "WANDB_API_KEY is not the secret's value" >"$ml/output/failure"; exit 5; }
  [ -z "$SAGETRAIN_SECRET_WANDB_API_KEY" ] || { echo "the ARN variable came too" >"$ml/output/failure"; exit 5; }
  echo "the token is $WANDB_API_KEY"
fi
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
    // An ECR name the engine lacks: said, and nothing looked up (this sandbox has no
    // credentials).
    assert!(
        r.stderr
            .contains("it would be resolved in ECR and pulled if the engine lacks it"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("credentials:"), "{}", r.stderr);
    assert!(!sb.project().join(".sagetrain/local/dry-1").exists());
}

#[test]
fn local_runs_are_validated_first_and_need_an_image_the_engine_has() {
    let sb = sandbox();
    sb.run(&local_args("x:dev", &["--local-sample", "0"]))
        .code(2)
        .stderr_has("--local-sample: must be at least 1");
    sb.run(&local_args("x:dev", &["--python", "/usr/bin/python3"]))
        .code(2)
        .stderr_has("--python: is the python of host mode");
    sb.run(&local_args("x:dev", &["--instance-count", "0"]))
        .code(2);
    sb.run(&local_args("x:dev", &["--wait"]))
        .code(2)
        .stderr_has("--local runs it here");
    sb.run(&local_args("localhost/no-such-image:none", &[]))
        .code(2)
        .stderr_has("has no such image");
    // Another registry's image is not pulled here: the engine pulls it.
    sb.run(&local_args("docker.io/library/sagetrain-none:none", &[]))
        .code(2)
        .stderr_has("a local run pulls only ECR images itself")
        .stderr_has("podman pull docker.io/library/sagetrain-none:none");
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

/// A sandbox with an account in the emulator, its traffic counted by a proxy.
fn sandbox_in_aws() -> (Sandbox, crate::proxy::Proxy, Account) {
    let acct = block_on(Account::new("eu-west-1"));
    let (mut sb, proxy) = crate::data_e2e::sandbox_via_proxy(&acct);
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        sb.set("CONTAINERS_CONF", &conf);
    }
    sb.write("project/data/train/sample.txt", "pixels");
    (sb, proxy, acct)
}

/// The GETs of objects (not listings) the proxy saw.
fn object_gets(proxy: &crate::proxy::Proxy) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && !r.target.contains("list-type"))
        .count()
}

#[test]
fn an_s3_channel_is_fetched_once_then_only_what_changed_and_can_be_sampled() {
    let (sb, proxy, acct) = sandbox_in_aws();
    let img = image(&sb);
    let bucket = format!("local-data-{}", unique());
    let s3 = acct.s3();
    let put = |key: &str, body: &str| {
        block_on(
            s3.put_object()
                .bucket(&bucket)
                .key(key)
                .body(body.as_bytes().to_vec().into())
                .send(),
        )
        .unwrap();
    };
    block_on(
        s3.create_bucket()
            .bucket(&bucket)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                    .build(),
            )
            .send(),
    )
    .unwrap();
    put("val/a.txt", "one");
    put("val/sub/b.txt", "two");
    put("val/c.txt", "three");
    put("val/", "");
    let uri = format!("val=s3://{bucket}/val/");
    let run = |extra: &[&str]| {
        let mut args = local_args(&img, &["--channel", &uri]);
        args.extend_from_slice(extra);
        sb.run(&args).ok()
    };

    let r = run(&[]);
    assert!(
        r.stderr
            .contains("[algo-1] val: a.txt=one c.txt=three sub/b.txt=two"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("channel val: s3://"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("3 objects (11 B): 3 fetched (11 B), 0 from the cache"),
        "{}",
        r.stderr
    );
    assert_eq!(object_gets(&proxy), 3);

    proxy.clear();
    let r = run(&[]);
    assert!(
        r.stderr
            .contains("[algo-1] val: a.txt=one c.txt=three sub/b.txt=two"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("0 fetched (0 B), 3 from the cache"),
        "{}",
        r.stderr
    );
    assert_eq!(
        object_gets(&proxy),
        0,
        "a second run reads no object from S3"
    );

    // A changed object is fetched alone; a deleted one leaves the channel.
    put("val/c.txt", "four!");
    block_on(
        s3.delete_object()
            .bucket(&bucket)
            .key("val/sub/b.txt")
            .send(),
    )
    .unwrap();
    proxy.clear();
    let r = run(&[]);
    assert!(
        r.stderr.contains("[algo-1] val: a.txt=one c.txt=four!"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("sub/b.txt=two"), "{}", r.stderr);
    assert_eq!(object_gets(&proxy), 1);

    // A sample: the first object only, in a folder of its own.
    proxy.clear();
    let r = run(&["--local-sample", "1"]);
    assert!(
        r.stderr.contains("[algo-1] val: a.txt=one\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("1 objects (3 B): 1 fetched"),
        "{}",
        r.stderr
    );
    assert_eq!(object_gets(&proxy), 1);
    let cache = sb.home().join(".cache/sagetrain/channels");
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        4,
        "two folders, two manifests"
    );
}

#[test]
fn a_secret_is_read_here_and_reaches_the_container_only_as_its_variable() {
    let (sb, proxy, acct) = sandbox_in_aws();
    let img = image(&sb);
    let token = format!("tok-{:x}-{:x}", unique(), unique());
    let name = format!("sagetrain/wandb-{}", unique());
    let client = aws_sdk_secretsmanager::Client::new(&acct.sdk);
    block_on(
        client
            .create_secret()
            .name(&name)
            .secret_string(&token)
            .send(),
    )
    .unwrap();
    let sha = {
        use sha2::Digest;
        let h = sha2::Sha256::digest(token.as_bytes());
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let secret = format!("WANDB_API_KEY={name}");
    let hp = format!("want_sha={sha}");
    let r = sb
        .run(&local_args(
            &img,
            &["--secret", &secret, "-H", &hp, "-o", "json", "-vv"],
        ))
        .ok();
    assert_eq!(r.json()["exit_code"], 0, "{}", r.stderr);
    assert!(r.stderr.contains("[algo-1] the token is "), "{}", r.stderr);
    assert!(r.stderr.contains("--env WANDB_API_KEY "), "{}", r.stderr);
    assert!(
        !r.stderr.contains(&token) && !r.stdout.contains(&token),
        "{}",
        r.stderr
    );
    let folder = PathBuf::from(r.json()["folder"].as_str().unwrap().to_string());
    let log = std::fs::read_to_string(folder.join("train.log")).unwrap();
    assert!(
        log.contains("the token is ") && !log.contains(&token),
        "{log}"
    );
    assert_eq!(proxy.count_op("GetSecretValue"), 1, "{:?}", proxy.counts());
    // A secret that does not exist: exit 4 before anything runs, naming it.
    let r = sb
        .run(&local_args(
            &img,
            &[
                "--secret",
                "WANDB_API_KEY=sagetrain/none",
                "--name",
                "nosecret",
            ],
        ))
        .stderr_has("there is no secret `sagetrain/none`");
    assert_ne!(r.code, 0);
    assert!(!sb
        .project()
        .join(".sagetrain/local/nosecret/train.log")
        .exists());
}

/// The python of the examples' trainer tests (torch, CPU): scripts/test sets it.
fn torch_python() -> String {
    std::env::var("SAGETRAIN_TEST_TORCH_PYTHON").expect(
        "SAGETRAIN_TEST_TORCH_PYTHON is not set: run the tests with scripts/test, which makes the torch venv",
    )
}

/// The example's tiny data set (images and masks), made by its own helper.
fn unet_data(py: &str, root: &Path) {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/unet-container/tests");
    let script = format!(
        "import sys; sys.path.insert(0, {tests:?}); from pathlib import Path; from sample_data import make_channel; \
         make_channel(Path({root:?}), 'train', ['t1', 't2', 't3', 't4'], size=32, seed=1); \
         make_channel(Path({root:?}), 'validation', ['v1', 'v2'], size=32, seed=2)",
        tests = tests.display().to_string(),
        root = root.display().to_string(),
    );
    let out = Command::new(py).args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn host_mode_trains_the_example_unet_for_one_epoch_with_this_machines_python() {
    let sb = Sandbox::new();
    let py = torch_python();
    let data = sb.dir.path().join("data");
    unet_data(&py, &data);
    let code = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/unet-container");
    let (code, train, val) = (
        code.display().to_string(),
        data.join("input/data/train").display().to_string(),
        data.join("input/data/validation").display().to_string(),
    );
    let r = sb
        .run(&[
            "train",
            "--local=host",
            "--python",
            &py,
            "--source",
            &code,
            "--train",
            &train,
            "--validation",
            &val,
            "--epochs",
            "1",
            "-H",
            "batch_size=2",
            "-H",
            "learning_rate=0.01",
            "-H",
            "image_size=32",
            "--env",
            "CUDA_VISIBLE_DEVICES=",
            "--env",
            "OMP_NUM_THREADS=1",
            "-o",
            "json",
        ])
        .ok();
    let out = r.json();
    assert_eq!(out["exit_code"], 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("host mode: train.py runs with Python 3"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("this is not the image"), "{}", r.stderr);
    let metric =
        regex::Regex::new(r"\[algo-1\] epoch=1 train_loss=[0-9.]+ val_dice=[0-9.]+").unwrap();
    assert!(metric.is_match(&r.stderr), "{}", r.stderr);
    let folder = PathBuf::from(out["folder"].as_str().unwrap());
    let names = tar_names(&folder.join("model.tar.gz"));
    assert!(names.contains(&"model.pt".to_string()), "{names:?}");
    // The channels were linked, not copied, and the code folder was left as it was.
    assert!(std::fs::symlink_metadata(folder.join("input/data/train"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!Path::new(&code).join(".sagetrain-launcher.sh").exists());
}

/// Host mode's entry: a python script that reports the toolkit's variables and waits for
/// SIGTERM when asked.
const HOST_ENTRY: &str = r#"import json, os, signal, sys, time
print("args", " ".join(sys.argv[1:]))
print("hps", os.environ["SM_HPS"], "channels", os.environ["SM_CHANNELS"])
print("train", open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "sample.txt")).read())
hps = json.loads(os.environ["SM_HPS"])
if hps.get("wait") == "yes":
    def term(*_):
        open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "term"), "w").write("got TERM\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "started"), "w").write("")
    time.sleep(60)
    sys.exit(4)
if hps.get("fail") == "yes":
    open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w").write("bad lr")
    sys.exit(3)
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"), "w").write("w")
"#;

/// A PATH with only python3 on it: no container engine.
fn path_without_engines(sb: &Sandbox) -> String {
    let bin = sb.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // The interpreter itself (python3 on PATH may be a shim that needs PATH).
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for the host-mode tests");
    let python = String::from_utf8(out.stdout).unwrap().trim().to_string();
    std::os::unix::fs::symlink(python, bin.join("python3")).unwrap();
    bin.display().to_string()
}

#[test]
fn without_an_engine_source_runs_in_host_mode_and_sigterm_reaches_the_entry() {
    let mut sb = sandbox();
    sb.write("project/src/train.py", HOST_ENTRY);
    let path = path_without_engines(&sb);
    sb.set("PATH", &path);
    let args = [
        "train",
        "--local",
        "--image",
        "unet:dev",
        "--source",
        "src",
        "--train",
        "data/train",
        "--epochs",
        "3",
    ];
    let r = sb.run(&[&args[..], &["-o", "json"]].concat()).ok();
    assert!(
        r.stderr.contains("no container engine on PATH"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("[algo-1] args --epochs 3"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(r#"[algo-1] hps {"epochs":3} channels ["train","code"]"#),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("[algo-1] train pixels"), "{}", r.stderr);
    let folder = PathBuf::from(r.json()["folder"].as_str().unwrap());
    assert_eq!(tar_names(&folder.join("model.tar.gz")), ["model.pth"]);

    sb.run(&[&args[..], &["-H", "fail=yes"]].concat())
        .code(5)
        .stderr_has("failed on algo-1 (exit 3): bad lr");
    // An engine asked for by name is never replaced by host mode.
    sb.run(&[&args[..], &["--engine", "podman"]].concat())
        .code(2)
        .stderr_has("podman");

    let waiting = [&args[..], &["-H", "wait=yes", "--name", "term-host"]].concat();
    let child = crate::data_e2e::spawn(&sb, &waiting);
    let tree = sb.project().join(".sagetrain/local/term-host");
    crate::data_e2e::wait_until("the entry to start", 30, || {
        tree.join("output/data/started").exists()
    });
    let (code, stderr) = crate::data_e2e::signal_and_wait(child, "-TERM");
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("passing SIGTERM to the entry"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(tree.join("output/data/term")).unwrap(),
        "got TERM\n"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An image made here, as a registry holds it: one gzip layer (/bin/busybox, /bin/sh and the
/// entry /bin/train), its config (linux/amd64, the layer's diff_id, the entrypoint; `label`
/// makes it unique) and a Docker schema 2 manifest. Returns the manifest and the blobs by
/// digest, the config's digest first.
fn registry_image(label: &str) -> (String, Vec<(String, Vec<u8>)>) {
    let busybox = std::fs::read("/bin/busybox")
        .expect("/bin/busybox (busybox-static) is needed: scripts/test installs it");
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_cksum();
    tar.append_data(&mut dir, "bin/", std::io::empty()).unwrap();
    for (name, body) in [
        ("bin/busybox", busybox.as_slice()),
        ("bin/sh", busybox.as_slice()),
        ("bin/train", ENTRY.as_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        tar.append_data(&mut h, name, body).unwrap();
    }
    let layer_tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &layer_tar).unwrap();
    let layer = gz.finish().unwrap();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/bin/train"], "Labels": {"sagetrain.test": label}},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&layer_tar))]},
    })
    .to_string()
    .into_bytes();
    let (config_digest, layer_digest) = (
        format!("sha256:{}", sha256_hex(&config)),
        format!("sha256:{}", sha256_hex(&layer)),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer.len(), "digest": layer_digest}],
    })
    .to_string();
    (
        manifest,
        vec![(config_digest, config), (layer_digest, layer)],
    )
}

/// Whether podman has the image `name` (its own answer, not sagetrain's).
fn podman_has(sb: &Sandbox, name: &str) -> bool {
    Command::new("podman")
        .args(["image", "inspect", name])
        .envs(sb.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn an_ecr_image_the_engine_lacks_is_pulled_through_the_ecr_api_once_and_run_by_its_id() {
    let (sb, proxy, acct) = sandbox_in_aws();
    let repo = format!("local-pull-{}", unique());
    let (manifest, blobs) = registry_image(&repo);
    let (config_digest, layer_digest) = (blobs[0].0.clone(), blobs[1].0.clone());
    let id_hex = config_digest.trim_start_matches("sha256:").to_string();
    let ecr = acct.ecr();
    block_on(ecr.create_repository().repository_name(&repo).send()).unwrap();
    let put = block_on(
        ecr.put_image()
            .repository_name(&repo)
            .image_manifest(&manifest)
            .image_manifest_media_type("application/vnd.docker.distribution.manifest.v2+json")
            .image_tag("v1")
            .send(),
    )
    .expect("ecr:PutImage");
    let manifest_digest = put
        .image()
        .and_then(|i| i.image_id())
        .and_then(|i| i.image_digest())
        .unwrap()
        .to_string();
    proxy.serve_blobs(blobs.iter().cloned().collect());
    assert!(!podman_has(&sb, &format!("sha256:{id_hex}")));
    let image = format!("{}/{repo}:v1", acct.registry());
    let blob_gets = |digest: &str| {
        proxy
            .requests()
            .iter()
            .filter(|r| r.op == "blob" && r.path().ends_with(digest))
            .count()
    };

    let r = sb.run(&local_args(&image, &["-o", "json"])).ok();
    assert_eq!(r.json()["exit_code"], 0, "{}", r.stderr);
    assert!(r.stderr.contains("[algo-1] trained"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "image: pulled {repo}@{manifest_digest} (1 layer, "
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("through the ECR API with your credentials; podman runs it as sha256:"),
        "{}",
        r.stderr
    );
    // Run by its ID, pinned to the digest; not by the tag.
    assert!(
        r.stderr.contains(&format!("sha256:{id_hex} train")),
        "{}",
        r.stderr
    );
    assert_eq!(blob_gets(&layer_digest), 1, "{:?}", proxy.counts());
    assert!(blob_gets(&config_digest) >= 1, "{:?}", proxy.counts());
    assert!(
        proxy.count_op("GetDownloadUrlForLayer") >= 2,
        "{:?}",
        proxy.counts()
    );
    assert_eq!(proxy.count_op("BatchGetImage"), 1, "{:?}", proxy.counts());
    // Podman's own answer: it has the image by the config's digest.
    assert!(podman_has(&sb, &format!("sha256:{id_hex}")));
    // Nothing left in the cache but the (empty) folder of pulls.
    let pulls = sb.home().join(".cache/sagetrain/pull");
    assert_eq!(std::fs::read_dir(&pulls).unwrap().count(), 0);

    // Again: resolved in ECR (the tag may have moved), found in the engine, nothing downloaded.
    proxy.clear();
    let r2 = sb.run(&local_args(&image, &["-o", "json"])).ok();
    assert_eq!(r2.json()["exit_code"], 0, "{}", r2.stderr);
    assert!(r2.stderr.contains("[algo-1] trained"), "{}", r2.stderr);
    assert!(
        r2.stderr.contains(&format!(
            "image {config_digest}, which podman already has: nothing to download"
        )),
        "{}",
        r2.stderr
    );
    assert_eq!(proxy.count_op("blob"), 0, "{:?}", proxy.counts());
    assert_eq!(proxy.count_op("config blob"), 0, "{:?}", proxy.counts());
    assert_eq!(proxy.count_op("GetDownloadUrlForLayer"), 0);
    assert_eq!(proxy.count_op("BatchGetImage"), 1);

    // No credentials and no signed URL in any output.
    for out in [&r.stdout, &r.stderr, &r2.stdout, &r2.stderr] {
        for secret in [
            acct.creds.secret_access_key(),
            acct.creds.session_token().unwrap(),
            "X-Amz-Signature",
            "X-Amz-Security-Token",
        ] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
    }
    let _ = Command::new("podman")
        .args(["rmi", "-f", &format!("sha256:{id_hex}")])
        .envs(sb.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output();
}
