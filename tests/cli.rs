//! What users read from plan, elements and check.

use crate::util::{Dir, Image};

#[test]
fn plan_shows_order_wanters_hooks_and_budget() {
    let dir = Dir::new();
    dir.image(&Image::new("p", &["mybase", "app"]).params("app", "port = 8080"));
    dir.write(
        "elements/app/element.toml",
        "description = \"app\"\ndepends = [\"init\", \"base\"]\n[params.port]\ndefault = 80\n",
    );
    dir.write("elements/app/install.d/20-app", "#!/bin/sh\n");
    dir.write("elements/mybase/element.toml", "description = \"b\"\nprovides = [\"base\"]\n");
    let r =
        dir.smelt(&["plan", "image.toml", "--elements-path", "elements", "--set", "init.then=poweroff"]).ok();
    assert!(
        r.stdout.contains("  mybase ")
            && r.stdout.contains("wanted by the image, element `app` (as `base`)\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.find("  init ").unwrap() < r.stdout.find("  app ").unwrap(), "{}", r.stdout);
    assert!(r.stdout.contains("  install.d       20-app"), "{}", r.stdout);
    assert!(r.stdout.contains("  app.port = 8080\n"), "{}", r.stdout);
    assert!(r.stdout.contains("  init.then = \"poweroff\"\n"), "{}", r.stdout);
    assert!(r.stdout.contains("budget (built-in size-budget.toml):"), "{}", r.stdout);
    let json: serde_json::Value = serde_json::from_str(
        &dir.smelt(&["plan", "image.toml", "--elements-path", "elements", "--json"]).ok().stdout,
    )
    .unwrap();
    let names: Vec<&str> =
        json["elements"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names.last(), Some(&"app"));
}

#[test]
fn set_rejects_unknown_params() {
    let dir = Dir::new();
    dir.image(&Image::new("p", &["init"]));
    let r = dir.smelt(&["plan", "image.toml", "--set", "init.than=poweroff"]).fails(2);
    assert_eq!(
        r.stderr,
        "smelt: --set init.than=poweroff: element `init` has no param `than`; did you mean `then`?\n"
    );
}

#[test]
fn elements_list_and_show() {
    let dir = Dir::new();
    let r = dir.smelt(&["elements", "list"]).ok();
    for name in ["base-busybox", "base-host", "buildinfo", "init"] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some("built-in")),
            "{}",
            r.stdout
        );
    }
    let r = dir.smelt(&["elements", "show", "init"]).ok();
    assert!(r.stdout.contains("  then = \"shell\"  (string: shell | poweroff | reboot)"), "{}", r.stdout);
    assert!(r.stdout.contains("templates/init.tera"), "{}", r.stdout);
    let r = dir.smelt(&["elements", "show", "int"]).fails(1);
    assert!(r.stderr.ends_with("did you mean `init`?\n"), "{}", r.stderr);
}

#[test]
fn check_validates_each_kind_of_file() {
    let dir = Dir::new();
    dir.image(&Image::new("p", &["init"]));
    dir.write("size-budget.toml", "[output.initramfs]\nmax = \"10 parsecs\"\n");
    dir.write("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n1\"\n");
    assert_eq!(dir.smelt(&["check", "image.toml"]).ok().stdout, "image.toml: ok (image `p`, 1 elements)\n");
    assert_eq!(
        dir.smelt(&["check", "client.toml"]).ok().stdout,
        "client.toml: ok (client inventory, 1 nodes)\n"
    );
    let r = dir.smelt(&["check", "size-budget.toml"]).fails(1);
    assert!(r.stderr.starts_with("error: unknown size unit `parsecs` in `10 parsecs`"), "{}", r.stderr);
}

#[test]
fn bad_command_line_exits_2() {
    Dir::new().smelt(&["build"]).fails(2);
    Dir::new().smelt(&["frobnicate"]).fails(2);
}

#[test]
fn dir_output_and_json_report() {
    let dir = Dir::new();
    dir.image(&Image::new("d", &["a"]).outputs(&["dir", "initramfs"]).set("compression", "\"none\""));
    dir.write("elements/a/root/etc/hello", "hi\n");
    let r = dir.build(&["--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["outputs"][0]["kind"], "dir");
    assert_eq!(report["outputs"][1]["path"], "out/d.cpio");
    assert_eq!(std::fs::read_to_string(dir.path("out/d.dir/etc/hello")).unwrap(), "hi\n");
    assert_eq!(report["tree"]["elements"]["a"]["files"], 1);
    assert!(r.stderr.is_empty(), "--json keeps stderr quiet: {}", r.stderr);
}

/// Completions and manual pages come from the clap definition; bash and groff take them.
#[test]
fn completions_load_in_bash_and_man_pages_render_without_warnings() {
    let dir = Dir::new();
    let script = dir.write("smelt.bash", &dir.smelt(&["completions", "bash"]).ok().stdout);
    let spec = crate::util::sh(&format!("bash -c 'source {}; complete -p smelt'", script.display()));
    assert!(spec.contains("-F _smelt smelt"), "{spec}");

    let main = dir.smelt(&["man"]).ok().stdout;
    for command in ["build", "plan", "elements", "check", "inspect", "diff", "bundle"] {
        assert!(main.contains(&format!("smelt\\-{command}(1)")), "smelt(1) does not list {command}");
        let page = dir.write(&format!("smelt-{command}.1"), &dir.smelt(&["man", command]).ok().stdout);
        // -ww: every warning; -z: no output, only the check.
        let warnings = crate::util::sh(&format!("groff -man -Tutf8 -ww -z {} 2>&1", page.display()));
        assert!(warnings.is_empty(), "smelt-{command}.1: {warnings}");
    }
    let build = dir.smelt(&["man", "build"]).ok().stdout;
    assert!(build.contains(".TH smelt-build 1") && build.contains("per\\-node"), "{build}");

    let r = dir.smelt(&["man", "nope"]).fails(1);
    assert!(
        r.stderr.contains("smelt: no command `nope`: smelt man takes one of build, plan"),
        "{}",
        r.stderr
    );
}

/// `--help` of smelt and every command, as users read it, against
/// tests/golden/help/*.txt (SNAPSHOTS=overwrite rewrites them; review the diff).
#[test]
fn help_texts_match_their_snapshots() {
    let dir = Dir::new();
    let mut got = std::collections::BTreeMap::new();
    for command in [
        "",
        "build",
        "plan",
        "elements",
        "check",
        "inspect",
        "diff",
        "serve",
        "deliver",
        "bundle",
        "completions",
        "man",
    ] {
        let args: Vec<&str> = [command, "--help"].into_iter().filter(|a| !a.is_empty()).collect();
        let file = format!("{}.txt", if command.is_empty() { "smelt" } else { command });
        got.insert(file, dir.smelt(&args).ok().stdout);
    }
    let differ = crate::util::snapshot("tests/golden/help", &got);
    assert!(differ.is_empty(), "{differ:?} differ");
}

/// buildinfo's template names `digest`, so every element's content digest is computed
/// for it (images whose templates never name it skip that read of every file); a
/// changed file changes its element's digest and no other.
#[test]
fn buildinfo_carries_content_digests_that_follow_the_files() {
    let dir = Dir::new();
    dir.image(&Image::new("b", &["init", "buildinfo", "app"]).outputs(&["dir"]));
    dir.write("elements/app/element.toml", "description = \"app\"\n");
    dir.write("elements/app/root/opt/app/data", "one\n");
    let digests = |out: &str| -> std::collections::BTreeMap<String, String> {
        dir.build_into(out, &[], &[]).ok();
        let text =
            std::fs::read_to_string(dir.path(&format!("{out}/b.dir/etc/smelt/buildinfo.json"))).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        doc["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_string(), e["digest"].as_str().unwrap().to_string()))
            .collect()
    };
    let before = digests("one");
    for (name, digest) in &before {
        assert!(digest.len() == 16 && digest.chars().all(|c| c.is_ascii_hexdigit()), "{name}: `{digest}`");
    }
    dir.write("elements/app/root/opt/app/data", "two\n");
    let after = digests("two");
    let changed: Vec<&String> = before.keys().filter(|n| before[*n] != after[*n]).collect();
    assert_eq!(changed, ["app"]);
}
