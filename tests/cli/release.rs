//! The release workflow and `cargo binstall` agree: for every target the workflow builds, the
//! asset binstall asks for (Cargo.toml's [package.metadata.binstall]) is the one the workflow
//! uploads, with the binary where binstall looks for it.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The targets of the workflow's build matrix.
fn workflow_targets(workflow: &str) -> Vec<String> {
    let re = regex::Regex::new(r"\{\s*target:\s*([a-z0-9_-]+),\s*os:").unwrap();
    re.captures_iter(workflow)
        .map(|c| c[1].to_string())
        .collect()
}

fn expand(template: &str, target: &str, version: &str, windows: bool) -> String {
    template
        .replace("{ repo }", "https://github.com/o/r")
        .replace("{ version }", version)
        .replace("{ name }", "sagetrain")
        .replace("{ target }", target)
        .replace("{ bin }", "sagetrain")
        .replace("{ binary-ext }", if windows { ".exe" } else { "" })
}

#[test]
fn binstall_asks_for_exactly_what_the_release_workflow_uploads() {
    let workflow = std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    let targets = workflow_targets(&workflow);
    assert_eq!(
        targets,
        [
            "x86_64-unknown-linux-gnu",
            "aarch64-unknown-linux-gnu",
            "x86_64-apple-darwin",
            "aarch64-apple-darwin",
            "x86_64-pc-windows-msvc"
        ]
    );
    // What the workflow's Package step names the archive and puts in it.
    assert!(workflow.contains("name=sagetrain-$TARGET"), "{workflow}");
    assert!(workflow.contains("archive=$name.zip") && workflow.contains("archive=$name.tar.gz"));
    assert!(workflow.contains(r#"7z a -tzip "../../../dist/$archive" sagetrain.exe"#));
    assert!(workflow.contains(r#"tar -czf "../../../dist/$archive" sagetrain"#));
    assert!(workflow.contains("sha256sum") && workflow.contains("SHA256SUMS"));

    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let package = &manifest["package"];
    let version = package["version"].as_str().unwrap();
    let meta = &package["metadata"]["binstall"];
    for target in &targets {
        let windows = target.contains("windows");
        let over = meta.get("overrides").and_then(|o| o.get(target.as_str()));
        let get = |k: &str| {
            over.and_then(|o| o.get(k))
                .or_else(|| meta.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("{target}: no {k}"))
                .to_string()
        };
        let url = expand(&get("pkg-url"), target, version, windows);
        let ext = if windows { "zip" } else { "tar.gz" };
        assert_eq!(
            url,
            format!("https://github.com/o/r/releases/download/v{version}/sagetrain-{target}.{ext}")
        );
        assert_eq!(get("pkg-fmt"), if windows { "zip" } else { "tgz" });
        assert_eq!(
            expand(&get("bin-dir"), target, version, windows),
            if windows {
                "sagetrain.exe"
            } else {
                "sagetrain"
            }
        );
    }
    // The workflow runs on a tag named after the version it checks.
    assert!(workflow.contains(r#"if [ "v$version" != "$GITHUB_REF_NAME" ]"#));
}

/// The released binaries are built with Cargo.toml's size profile, and packaged from its folder;
/// `cargo install` (the release profile) builds the generated SDK crates unoptimised.
#[test]
fn the_release_workflow_builds_and_packages_the_dist_profile() {
    let workflow = std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    assert!(
        workflow.contains("cargo build --profile dist --locked --target"),
        "the workflow's build step does not use the dist profile"
    );
    assert!(workflow.contains("exe=target/${{ matrix.target }}/dist/sagetrain"));
    assert!(workflow.contains(r#"cd "target/$TARGET/dist""#));
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let profiles = &manifest["profile"];
    let dist = &profiles["dist"];
    assert_eq!(dist["inherits"].as_str(), Some("release"));
    assert_eq!(dist["lto"].as_str(), Some("fat"));
    assert_eq!(dist["codegen-units"].as_integer(), Some(1));
    assert_eq!(dist["panic"].as_str(), Some("abort"));
    // Every crate release builds unoptimised is optimised for size again in dist (a custom
    // profile inherits release's per-package settings, and they win over its own).
    let fast = profiles["release"]["package"].as_table().unwrap();
    assert!(fast.contains_key("aws-sdk-sagemaker"), "{fast:?}");
    for (name, settings) in fast {
        assert_eq!(settings["opt-level"].as_integer(), Some(0), "{name}");
        assert_eq!(
            dist["package"][name.as_str()]["opt-level"].as_str(),
            Some("s"),
            "{name} is not optimised in the dist profile"
        );
    }
}
