//! `sagetrain completions SHELL` and `sagetrain man`, checked with the real tools: bash loads the
//! script and registers the completion; man and groff render the page without warnings.
//! scripts/test installs bash, man-db and groff-base when missing, so these never skip.

use crate::harness::*;
use std::process::Command;

fn tool(name: &str, args: &[&str]) -> std::process::Output {
    Command::new(name)
        .args(args)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{name}` ({e}); ./scripts/test installs it"))
}

#[test]
fn the_bash_script_parses_loads_and_completes_subcommands() {
    let sb = Sandbox::new();
    let r = sb.run(&["completions", "bash"]).ok();
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    let path = sb.write("sagetrain.bash", &r.stdout);
    let p = path.to_str().unwrap();
    let out = tool("bash", &["-n", p]);
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Loaded, it registers a completion, and completing offers the
    // subcommands (`sagetrain wa` -> wait).
    let script = format!(
        "source {p}; complete -p sagetrain; COMP_WORDS=(sagetrain wa); COMP_CWORD=1; \
         COMP_LINE='sagetrain wa'; COMP_POINT=${{#COMP_LINE}}; _sagetrain sagetrain wa sagetrain; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let out = tool("bash", &["--norc", "--noprofile", "-c", &script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-F _sagetrain sagetrain"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "wait"), "{stdout}");
    for shell in ["zsh", "fish", "powershell"] {
        let r = sb.run(&["completions", shell]).ok();
        assert!(r.stdout.contains("sagetrain"), "{shell}");
    }
    sb.run(&["completions", "tcsh"]).code(2);
}

#[test]
fn the_man_page_renders_with_man_and_groff() {
    let sb = Sandbox::new();
    let r = sb.run(&["man"]).ok();
    let path = sb.write("sagetrain.1", &r.stdout);
    let p = path.to_str().unwrap();
    // -P-cbou: plain text, without overstriking for bold and underline.
    let out = tool("groff", &["-man", "-Tutf8", "-ww", "-P-cbou", p]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "groff warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("NAME"), "{text}");
    assert!(
        text.contains("Submit and follow Amazon SageMaker"),
        "{text}"
    );
    assert!(text.contains("--endpoint-url"), "{text}");
    let out = tool("man", &["-l", p]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("sagetrain-completions(1)"), "{text}");

    // --dir: one page per command; each renders, and `man -l` finds the train page's options.
    let dir = sb.dir.path().join("man1");
    let r = sb.run(&["man", "--dir", dir.to_str().unwrap()]).ok();
    let train = dir.join("sagetrain-train.1");
    assert!(
        r.stdout.lines().any(|l| l == train.to_str().unwrap()),
        "{}",
        r.stdout
    );
    for page in std::fs::read_dir(&dir).unwrap() {
        let page = page.unwrap().path();
        let out = tool(
            "groff",
            &["-man", "-Tutf8", "-ww", "-z", page.to_str().unwrap()],
        );
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = tool("man", &["-l", train.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("stop-on-interrupt"), "{text}");
}
