//! The guards that keep credentials safe, across EVERY command: at -vvv (the AWS SDK's own debug
//! log on), with known credentials in the environment or in a profile file, no output ever
//! holds the secret key, the session token or the full access key id; and every file the tool
//! writes in the home or project folder is private (0600, or under a 0700 folder) or is a
//! shareable project file that holds no secret.

use crate::harness::*;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Files under `root`: path -> (mode, contents).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else {
                let mode = meta.permissions().mode() & 0o777;
                out.insert(p.clone(), (mode, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out
}

/// Is `file` inside a folder (below `root`) that only its owner may enter?
fn under_private_folder(file: &Path, root: &Path) -> bool {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            return false;
        }
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return true;
        }
        dir = d.parent();
    }
    false
}

/// Project files meant to be shared (git): allowed with the usual permissions, never a secret.
const SHAREABLE: &[&str] = &["project/sagetrain.toml"];

struct Secrets {
    key_id: String,
    secret: String,
    token: Option<String>,
}

impl Secrets {
    fn assert_absent(&self, what: &str, text: &str) {
        assert!(
            !text.contains(&self.secret),
            "the secret key leaked: {what}"
        );
        if let Some(t) = &self.token {
            assert!(
                !text.contains(t.as_str()),
                "the session token leaked: {what}"
            );
        }
        assert!(
            !text.contains(&self.key_id),
            "the full access key id leaked: {what}"
        );
    }
}

/// Run every command (results, dry runs, reports, file writes and error paths) at -vvv and
/// check the output and the files left behind.
fn every_command(sb: &mut Sandbox, s: &Secrets, role: &str, train: &str) {
    let root = sb.dir.path().to_path_buf();
    // An image archive to push: the user's own file, there before the snapshot.
    let layer = crate::image_e2e::testdata::layer("bin/train", 2000, 1);
    crate::image_e2e::testdata::docker_save(&root.join("project/image.tar"), "amd64", &[layer]);
    let before = snapshot(&root);
    let base = ["--role", role, "--image", "unet-vessels", "--train", train];
    let with = |cmd: &[&str], extra: &[&str]| -> Vec<String> {
        cmd.iter()
            .chain(base.iter())
            .chain(extra.iter())
            .map(|x| x.to_string())
            .collect()
    };
    let pasted_secret = format!("note={}", s.secret);
    let pasted_key = format!("api_key={}", s.key_id);
    let mut commands: Vec<Vec<String>> = vec![
        with(&["train", "--epochs", "5"], &["-vvv"]),
        with(&["train", "--epochs", "5"], &["-vvv", "--dry-run"]),
        with(&["train", "--epochs", "5"], &["-vv", "-o", "json"]),
        with(&["config"], &["-vvv"]),
        with(&["config"], &["-vvv", "-o", "json"]),
        with(&["doctor"], &["-vvv"]),
        with(&["doctor"], &["-vvv", "-o", "json"]),
        vec!["init".into(), "--print".into(), "-vvv".into()],
        vec!["init".into(), "-vvv".into()],
        vec![
            "init".into(),
            "--force".into(),
            "-vvv".into(),
            "-o".into(),
            "json".into(),
        ],
        vec!["init".into(), "-vvv".into()], // refused: exists
        // Error paths: a missing role, a missing image, pasted credentials.
        with(
            &["train", "--epochs", "5"],
            &["-vvv", "--role", "NoSuchRole"],
        ),
        with(&["doctor"], &["-vvv", "--image", "no-such-repo"]),
        with(&["train", "--epochs", "5"], &["-vvv", "-H", &pasted_secret]),
        with(&["doctor"], &["-vvv", "-H", &pasted_key]),
        with(
            &["train", "--epochs", "5"],
            &["-vvv", "--env", &pasted_secret],
        ),
        with(&["config"], &["-vvv", "--tag", &pasted_key]),
    ];
    // Following a job: these use the last job the `train` runs above recorded.
    for cmd in [
        &["status", "-vvv"][..],
        &["status", "-vvv", "-o", "json"],
        &["wait", "--logs", "-vvv"],
        &["logs", "-vvv"],
        &["list", "-vvv", "-o", "json"],
        &["download", "-vvv", "--dir", "downloaded"],
        &["stop", "no-such-job", "-vvv"],
    ] {
        commands.push(cmd.iter().map(|x| x.to_string()).collect());
    }
    commands.push(
        [
            "image",
            "push",
            "--archive",
            "image.tar",
            "--repo",
            "unet-guard",
            "-vvv",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect(),
    );
    // Rejected credentials, through the same commands.
    let rejecting = rejecting_endpoint();
    commands.push(with(
        &["train", "--epochs", "5"],
        &["-vvv", "--endpoint-url", &rejecting],
    ));
    commands.push(with(&["doctor"], &["-vvv", "--endpoint-url", &rejecting]));
    let mut sdk_logged = false;
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = sb.run(&args);
        assert!(
            r.code != 101 && !r.stderr.contains("panicked"),
            "{args:?} crashed:\n{}",
            r.stderr
        );
        s.assert_absent(&format!("{args:?}"), &format!("{}{}", r.stdout, r.stderr));
        sdk_logged |= r.stderr.contains("aws_smithy_runtime");
    }
    assert!(sdk_logged, "-vvv shows the AWS SDK's debug log");

    // Files written in the home or project folder.
    let after = snapshot(&root);
    let mut written = 0;
    for (path, (mode, bytes)) in &after {
        if before.get(path).map(|b| (&b.0, &b.1)) == Some((mode, bytes)) {
            continue;
        }
        written += 1;
        let rel = path.strip_prefix(&root).unwrap();
        let text = String::from_utf8_lossy(bytes);
        s.assert_absent(&format!("file {}", rel.display()), &text);
        if SHAREABLE.iter().any(|a| rel == Path::new(a)) {
            continue;
        }
        let scope = if rel.starts_with("home") {
            root.join("home")
        } else {
            root.join("project")
        };
        assert!(
            mode & 0o077 == 0 || under_private_folder(path, &scope),
            "{} is mode {mode:o}, not 0600 nor under a 0700 folder",
            rel.display()
        );
    }
    assert!(written >= 1, "init wrote sagetrain.toml");
}

#[test]
fn with_session_credentials_in_the_environment_no_command_leaks_them() {
    let Seeded { acct, bucket, .. } = seeded("us-east-1");
    let (role, train) = ("SageMakerRole", format!("s3://{bucket}/data/train/"));
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    let s = Secrets {
        key_id: acct.creds.access_key_id().to_string(),
        secret: acct.creds.secret_access_key().to_string(),
        token: acct.creds.session_token().map(str::to_string),
    };
    every_command(&mut sb, &s, role, &train);
}

#[test]
fn with_credentials_in_a_profile_file_no_command_leaks_them() {
    let Seeded { acct, bucket, .. } = seeded("eu-west-1");
    let (role, train) = ("SageMakerRole", format!("s3://{bucket}/data/train/"));
    let mut sb = Sandbox::new();
    acct.profile(&mut sb, "ml");
    sb.set("AWS_PROFILE", "ml");
    let s = Secrets {
        key_id: acct.creds.access_key_id().to_string(),
        secret: acct.creds.secret_access_key().to_string(),
        token: acct.creds.session_token().map(str::to_string),
    };
    every_command(&mut sb, &s, role, &train);
}

#[test]
fn with_the_documented_example_keys_in_the_credentials_file_no_command_leaks_them() {
    // Long-lived keys (no session token) in ~/.aws/credentials: moto accepts any keys and puts
    // them in its default account; what matters here is the output.
    let mut sb = Sandbox::new();
    sb.write(
        "home/.aws/credentials",
        &format!(
            "[default]\naws_access_key_id = {FAKE_KEY_ID}\naws_secret_access_key = {FAKE_SECRET}\n"
        ),
    );
    sb.write("home/.aws/config", "[default]\nregion = us-east-1\n");
    sb.set("AWS_ENDPOINT_URL", &moto_url());
    let s = Secrets {
        key_id: FAKE_KEY_ID.into(),
        secret: FAKE_SECRET.into(),
        token: None,
    };
    every_command(
        &mut sb,
        &s,
        "arn:aws:iam::123456789012:role/SageMakerRole",
        "s3://sagetrain-guards-nonexistent/train/",
    );
}
