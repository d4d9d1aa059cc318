//! Plan files: every valid fixture and shipped plan parses; every invalid fixture fails with
//! the located error its first line expects (`# expect: LINE:COL: fragment|fragment`).

use std::path::Path;

fn fixtures(dir: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn valid_plans_parse() {
    let mut files = fixtures("tests/valid_plans");
    files.extend(fixtures("plans"));
    assert!(files.len() >= 3, "fixtures missing: {files:?}");
    for f in files {
        if let Err(e) = cutover::plan::load(&f) {
            panic!("{} should be valid:\n{e}", f.display());
        }
    }
}

#[test]
fn invalid_plans_fail_with_located_errors() {
    let files = fixtures("tests/invalid_plans");
    assert!(
        files.len() >= 12,
        "a dozen bad plans expected, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| {
                panic!(
                    "{}: first line must be `# expect: L:C: fragment`",
                    f.display()
                )
            });
        let (pos, fragments) = expect.split_at(expect.find(": ").unwrap());
        let fragments: Vec<&str> = fragments[2..]
            .split('|')
            .filter(|s| !s.is_empty())
            .collect();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let errors = match cutover::plan::parse(&name, &text) {
            Ok(_) => {
                failures.push(format!("{name}: parsed but should fail"));
                continue;
            }
            Err(e) => e,
        };
        let rendered = errors.to_string();
        let hit = errors.0.iter().any(|e| {
            let full = format!("{}\n{}", e.message, e.hint.clone().unwrap_or_default());
            format!("{}:{}", e.line, e.col) == pos
                && fragments.iter().all(|frag| full.contains(frag))
        });
        if !hit {
            failures.push(format!(
                "{name}: expected {pos}: {fragments:?}, got:\n{rendered}"
            ));
        }
        // Every error names the file and carries a hint.
        for e in &errors.0 {
            assert!(rendered.contains(&format!("{name}:{}:{}: ", e.line, e.col)));
            assert!(
                e.hint.is_some(),
                "{name}: error without a hint: {}",
                e.message
            );
        }
        assert!(
            !rendered.contains("hunter2"),
            "{name}: a secret leaked into an error"
        );
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// `cutover plan inputs | head -1` used to panic on the closed pipe (println! on EPIPE).
#[test]
fn a_closed_stdout_ends_quietly_without_a_panic() {
    for args in [&["plan", "inputs"][..], &["plan", "example"][..]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("runs");
        // The reader goes away before the first line is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("ends");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

fn cutover(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn completions_generate_for_each_shell_and_the_shell_accepts_them() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, checker, flag) in [
        ("bash", "bash", "-n"),
        ("zsh", "zsh", "-n"),
        ("fish", "fish", "--no-execute"),
    ] {
        let out = cutover(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["rehearse", "attach", "invite", "sign-key"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
        let file = dir.path().join(format!("cutover.{shell}"));
        std::fs::write(&file, &script).unwrap();
        let parsed = std::process::Command::new(checker)
            .arg(flag)
            .arg(&file)
            .output()
            .unwrap_or_else(|e| {
                panic!("{checker} is needed to check its completions (.ci/run installs it): {e}")
            });
        assert!(
            parsed.status.success(),
            "{shell} rejects its completions: {}",
            String::from_utf8_lossy(&parsed.stderr)
        );
    }
    let bad = cutover(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values: bash"));
}

#[test]
fn the_man_pages_render_with_man() {
    let dir = tempfile::tempdir().unwrap();
    let out = cutover(&["man", "--out", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for page in [
        "cutover.1",
        "cutover-rehearse.1",
        "cutover-attach.1",
        "cutover-run.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page} missing");
    }
    let render = |page: &str| {
        let out = std::process::Command::new("man")
            .arg("-l")
            .arg(dir.path().join(page))
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap_or_else(|e| panic!("man is needed (.ci/run installs man-db): {e}"));
        assert!(out.status.success(), "{page}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let top = render("cutover.1");
    assert!(top.contains("NAME") && top.contains("rehearse"), "{top}");
    let attach = render("cutover-attach.1");
    assert!(
        attach.contains("--sign-key") && attach.contains("--fingerprint"),
        "{attach}"
    );
    // On stdout, the top page, ready for `man -l -`.
    let stdout = cutover(&["man"]);
    assert!(
        String::from_utf8_lossy(&stdout.stdout).starts_with(".ie"),
        "roff on stdout"
    );
}

/// `plan show` of the built-in plan (no file) and of every shipped plan: the text is the
/// reviewed snapshot, and the JSON lists every step with its action and undo.
#[test]
fn plan_show_of_every_shipped_plan_matches_its_snapshot_and_lists_every_step() {
    let mut runs: Vec<(String, Option<std::path::PathBuf>)> =
        vec![("builtin-rehearsal".into(), None)];
    for f in fixtures("plans") {
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        runs.push((stem, Some(f)));
    }
    for (name, file) in runs {
        let mut args = vec!["plan".to_string(), "show".to_string()];
        if let Some(f) = &file {
            args.push(f.to_string_lossy().into_owned());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cutover(&argv);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        insta::assert_snapshot!(format!("plan_show_{name}"), text);

        let mut json_args = argv.clone();
        json_args.push("--json");
        let out = cutover(&json_args);
        assert_eq!(out.status.code(), Some(0), "{name} --json");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: plan show --json is not JSON: {e}"));
        let plan = match &file {
            Some(f) => cutover::plan::load(f).unwrap_or_else(|e| panic!("{e}")),
            None => cutover::plan::rehearsal_plan(),
        };
        let steps = doc["steps"].as_array().expect("steps");
        assert_eq!(
            steps.len(),
            plan.steps.len(),
            "{name}: every step is listed"
        );
        for (shown, step) in steps.iter().zip(&plan.steps) {
            assert_eq!(shown["id"], step.id.as_str(), "{name}");
            assert_eq!(
                shown["gates"].as_array().map(Vec::len),
                Some(step.gates.len()),
                "{name} {}: every gate",
                step.id
            );
            assert_eq!(
                shown["action"]["summary"],
                step.action.describe(&plan).as_str()
            );
            let calls = shown["action"]["calls"].as_array().expect("calls");
            assert_eq!(
                calls.is_empty(),
                !step.action.changes_state(),
                "{name} {}: an action that changes the world names its calls",
                step.id
            );
            match &step.undo {
                Some(u) => {
                    assert_eq!(shown["undo"]["summary"], u.describe(&plan).as_str());
                    assert!(
                        !shown["undo"]["calls"]
                            .as_array()
                            .expect("undo calls")
                            .is_empty()
                    );
                }
                None => assert!(shown.get("undo").is_none(), "{name} {}", step.id),
            }
        }
        let undos = plan.steps.iter().filter(|s| s.undo.is_some()).count();
        let order = doc["rollback_order"].as_array().expect("rollback order");
        assert_eq!(
            order.len(),
            undos,
            "{name}: every undo is in the rollback order"
        );
        let ids: Vec<&str> = order.iter().filter_map(|r| r["step"].as_str()).collect();
        let mut expected: Vec<&str> = plan
            .steps
            .iter()
            .filter(|s| s.undo.is_some())
            .map(|s| s.id.as_str())
            .collect();
        expected.reverse();
        assert_eq!(ids, expected, "{name}: the rollback undoes newest first");
        assert_eq!(
            doc["aborts"].as_array().map(Vec::len),
            Some(plan.aborts.len()),
            "{name}: every abort condition"
        );
        assert_eq!(
            doc["budget"]["max_downtime_ms"].as_i64(),
            plan.budget.as_ref().map(|b| b.max_ms),
            "{name}: the downtime budget"
        );
        assert_eq!(
            doc.get("deadline").is_some(),
            plan.deadline.is_some(),
            "{name}: the deadline"
        );
    }
}

/// `--check` needs real sources: on a rehearsal plan it says so and how to get the dry run.
#[test]
fn plan_show_check_on_a_rehearsal_plan_says_why_not() {
    let out = cutover(&["plan", "show", "--check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("embedded rehearsal world") && stderr.contains("drop --check"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
