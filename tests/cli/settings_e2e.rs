//! Every declared `train` setting, end to end: set in `sagetrain.toml`, carried into the dry-run
//! request, created on the emulator, and read back by `train --from` into the same request.
//! The list of settings comes from the declaration itself (`sagetrain::job::settings`), so a
//! setting added there is covered here without a new test.

use crate::harness::*;
use sagetrain::settings::{maps, scalars, LOCAL_ONLY};
use std::collections::BTreeMap;

/// The TOML value used for a setting: the declared example, or a value the emulator account
/// really holds (role, image, buckets).
fn value_for(key: &str, s: &Seeded, role: &str) -> Option<String> {
    let q = |v: String| format!("\"{v}\"");
    Some(match key {
        "role" => q(role.to_string()),
        "image" => q("unet-vessels:latest".into()),
        "output_path" => q(format!("s3://{}/out/", s.bucket)),
        "checkpoint_s3" => q(format!("s3://{}/ck/", s.bucket)),
        _ => return None,
    })
}

fn map_entries(key: &str, s: &Seeded, without: Option<&str>) -> Vec<(String, String)> {
    let m = maps().into_iter().find(|m| m.key == key).unwrap();
    if key == "channels" {
        // A channel's input mode is a field of its entry (`channel_input_modes`).
        let train = format!("\"s3://{}/data/train/\"", s.bucket);
        let modes = maps()
            .into_iter()
            .find(|m| m.in_tables_of == Some(("channels", "input_mode")))
            .unwrap();
        let train = if without == Some(modes.key) {
            train
        } else {
            format!("{{ uri = {train}, input_mode = {} }}", modes.example[0].1)
        };
        return vec![
            ("train".into(), train),
            (
                "validation".into(),
                format!("\"s3://{}/data/validation/\"", s.bucket),
            ),
        ];
    }
    m.example
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `sagetrain.toml` with every setting the file may hold, but `without` and `omit`.
fn config_text(s: &Seeded, role: &str, without: Option<&str>, omit: &[&str]) -> String {
    let mut t = String::from("region = \"us-east-1\"\n");
    for m in scalars()
        .iter()
        .filter(|m| m.in_file && Some(m.key) != without && !omit.contains(&m.key))
    {
        let v = value_for(m.key, s, role).unwrap_or_else(|| m.example.to_string());
        t.push_str(&format!("{} = {v}\n", m.key));
    }
    for m in maps()
        .iter()
        .filter(|m| Some(m.key) != without && m.in_tables_of.is_none())
    {
        t.push_str(&format!("[{}]\n", m.key));
        for (k, v) in map_entries(m.key, s, without) {
            t.push_str(&format!("{k} = {v}\n"));
        }
    }
    t
}

/// The request without what differs by run: the generated name and the submission id.
fn normalized(mut req: serde_json::Value) -> serde_json::Value {
    let name = req["TrainingJobName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    req.as_object_mut().unwrap().remove("TrainingJobName");
    if let Some(tags) = req["Tags"].as_array_mut() {
        tags.retain(|t| t["Key"] != SUBMISSION_TAG);
    }
    // The default checkpoint location is under the job's name.
    if let Some(uri) = req["CheckpointConfig"]["S3Uri"].as_str() {
        let uri = uri.replace(&name, "JOB");
        req["CheckpointConfig"]["S3Uri"] = serde_json::Value::String(uri);
    }
    req
}

fn dry_run(sb: &Sandbox, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["train", "--dry-run", "-o", "json"];
    args.extend_from_slice(extra);
    sb.run(&args).ok().json()
}

/// Settings that exclude each other: each pass leaves out one side.
const PASSES: &[&[&str]] = &[
    // A warm pool does not go with spot training, nor remote debugging with network isolation.
    &["keep_alive", "remote_debug"],
    &["spot", "max_wait", "network_isolation"],
];

#[test]
fn every_declared_setting_reaches_the_request_and_round_trips_through_from() {
    for omit in PASSES {
        round_trip(omit);
    }
}

fn round_trip(omit: &[&str]) {
    let s = seeded("us-east-1");
    // A second role that trusts SageMaker: without `role`, discovery cannot pick one.
    let role = block_on(s.acct.role("OtherRole", "/", true));
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    // The secret of the `[secrets]` example, which `train` looks up.
    aws_cli(
        &sb,
        "us-east-1",
        &[
            "secretsmanager",
            "create-secret",
            "--name",
            "sagetrain/wandb",
            "--secret-string",
            "test-token",
        ],
    );
    // The Price List (the emulator has none), for the example `max_cost`.
    let pricing = crate::fake_sagemaker::start_with(
        crate::fake_sagemaker::job_json("unused", "Completed", "Completed", &[], None),
        crate::fake_sagemaker::Stop::Accept,
        vec![("GetProducts", crate::quota_e2e::price_list("1.0"))],
    );
    sb.set("AWS_ENDPOINT_URL_PRICING", &pricing.url);
    // The code folder of `source` (its example), holding the example `entry` and the default.
    sb.write("src/main.py", "print('main')\n");
    sb.write("src/train.py", "print('train')\n");

    // 1. Each setting in the file is carried into the request: without it, the request differs.
    sb.write("sagetrain.toml", &config_text(&s, &role, None, omit));
    let full = dry_run(&sb, &[]);
    assert!(
        full["TrainingJobName"]
            .as_str()
            .unwrap()
            .starts_with("unet-vessels-"),
        "base_name reaches the name: {full}"
    );
    let full_n = normalized(full.clone());
    let mut keys: Vec<(&str, &str)> = scalars()
        .iter()
        .filter(|m| m.in_file && m.key != "base_name" && !omit.contains(&m.key))
        // A budget is checked before the request, not part of it (below); the settings of
        // local runs are no part of it either.
        .filter(|m| m.key != "max_cost" && !LOCAL_ONLY.contains(&m.key))
        .map(|m| (m.key, m.flag))
        .collect();
    keys.extend(maps().iter().map(|m| (m.key, m.flag)));
    for (key, flag) in keys {
        sb.write("sagetrain.toml", &config_text(&s, &role, Some(key), omit));
        // Without it the request differs, or cannot be made (no image, no role to pick).
        let r = sb.run(&["train", "--dry-run", "-o", "json"]);
        if r.code == 0 {
            assert_ne!(
                normalized(r.json()),
                full_n,
                "`{key}` in sagetrain.toml does not reach the CreateTrainingJob request"
            );
        } else {
            assert!(
                r.stderr.contains(key) || r.stderr.contains(flag),
                "without `{key}`: failed for another reason: {}",
                r.stderr
            );
        }
    }
    // `max_cost` from the file is the budget: one below the worst case refuses the job.
    if !omit.contains(&"max_cost") {
        let text =
            config_text(&s, &role, None, omit).replace("max_cost = \"50\"", "max_cost = \"0.01\"");
        sb.write("sagetrain.toml", &text);
        sb.run(&["train", "--dry-run", "-o", "json"])
            .code(2)
            .stderr_has("--max-cost: the worst case is");
    }
    // The settings the file may not hold are flags only.
    let flag_only: Vec<&str> = scalars()
        .iter()
        .filter(|m| !m.in_file)
        .map(|m| m.key)
        .collect();
    assert_eq!(flag_only, ["name", "local", "local_sample"]);
    sb.write("sagetrain.toml", &config_text(&s, &role, None, omit));
    let named = dry_run(&sb, &["--name", "given-name-1"]);
    assert_eq!(named["TrainingJobName"], "given-name-1");

    // 2. Create the job on the emulator (an independent read checks it is there).
    let out = sb.run(&["train", "-o", "json"]).ok().json();
    let job = out["job_name"].as_str().unwrap().to_string();
    let d = block_on(s.acct.describe(&job));
    assert_eq!(d.training_job_name(), Some(job.as_str()));

    // 3. `train --from JOB --dry-run` from a folder without sagetrain.toml gives the same
    //    request. What --from deliberately does not copy is declared; each is handled here.
    let not_copied: BTreeMap<&str, &str> = scalars()
        .iter()
        .filter_map(|m| m.not_copied.map(|why| (m.key, why)))
        .collect();
    assert_eq!(
        not_copied.keys().copied().collect::<Vec<_>>(),
        [
            "base_name",
            "engine",
            "local",
            "local_sample",
            "max_cost",
            "name",
            "pin_digest",
            "python"
        ],
        "{not_copied:?}"
    );
    assert!(maps().iter().all(|m| m.not_copied.is_none()));
    let elsewhere = sb.project().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    // pin_digest is not copied: the old job ran the tag, so the flag says it again. The name is
    // new (normalized away), base_name only shapes the name, and max_cost is no part of the
    // request.
    let from = sb
        .run_in(
            &elsewhere,
            &[
                "train",
                "--from",
                &job,
                "--no-pin-digest",
                "--dry-run",
                "-o",
                "json",
            ],
        )
        .ok()
        .json();
    let mut expected = full_n.clone();
    let mut got = normalized(from);
    // The emulator's gaps, asserted so that the day they close this test says so: it does not
    // store Environment, RetryStrategy or RemoteDebugConfig, and it replaces MetricDefinitions
    // with a sample of its own.
    assert!(d.environment().is_none_or(|e| e.is_empty()));
    assert!(d.retry_strategy().is_none());
    assert!(d.remote_debug_config().is_none());
    assert!(
        expected.get("RetryStrategy").is_some(),
        "retries reach the request"
    );
    for r in [&mut expected, &mut got] {
        let o = r.as_object_mut().unwrap();
        o.remove("Environment");
        o.remove("RetryStrategy");
        o.remove("RemoteDebugConfig");
        o["AlgorithmSpecification"]
            .as_object_mut()
            .unwrap()
            .remove("MetricDefinitions");
    }
    assert_eq!(
        got, expected,
        "train --from {job} does not give the same request"
    );
}

/// The README's configuration reference names every declared setting of every group: the key
/// of each setting the file may hold (in its one table, once), each flag and each variable.
#[test]
fn the_readme_configuration_reference_names_every_declared_setting() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## Configuration reference").unwrap();
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    // The table of keys: one run of rows from its header to the first line that is not a row.
    let header = section.find("| key in `sagetrain.toml` |").unwrap();
    let rows: Vec<&str> = section[header..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .collect();
    let table = rows.join("\n");
    let next = section[header..]
        .lines()
        .skip(rows.len())
        .find(|l| !l.trim().is_empty());
    assert!(
        !next.is_some_and(|l| l.starts_with('|')),
        "the configuration table is broken in two by a blank line before {next:?}"
    );
    let mut first_cells: Vec<&str> = rows[2..]
        .iter()
        .map(|r| {
            r.split(" | ")
                .next()
                .unwrap_or("")
                .trim_start_matches("| ")
                .trim()
        })
        .filter(|c| !c.is_empty() && *c != "|")
        .collect();
    let n = first_cells.len();
    first_cells.sort();
    first_cells.dedup();
    assert_eq!(first_cells.len(), n, "a key is listed twice: {rows:#?}");
    for (group, g) in sagetrain::groups() {
        for m in &g.scalars {
            if m.in_file {
                assert!(
                    table.contains(&format!("`{}`", m.name())),
                    "the configuration table lacks {} ({group})",
                    m.name()
                );
            }
            if !m.flag.is_empty() {
                assert!(
                    section.contains(&format!("`{}", m.flag)),
                    "the configuration reference lacks {} ({group})",
                    m.flag
                );
            }
            for var in m.env {
                assert!(
                    section.contains(&format!("`{var}`")),
                    "the configuration reference lacks {var} ({group})"
                );
            }
        }
        for m in &g.maps {
            // A map read from fields of another section's tables (per-channel input modes) has
            // no section of its own: the table names that section, and its flag.
            let name = match m.in_tables_of {
                Some((sec, _)) => sec.to_string(),
                None => m.name(),
            };
            assert!(
                table.contains(&format!("`[{name}]`")),
                "the configuration table lacks [{name}] ({group})"
            );
            assert!(
                table.contains(&format!("`{} ", m.flag)),
                "the configuration table lacks {} ({group})",
                m.flag
            );
        }
        for s in g.shorthands {
            assert!(table.contains(&format!("`{}", s.flag)), "{}", s.flag);
        }
    }
}
