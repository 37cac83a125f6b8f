//! Every kind of bad input gets a clear error, pinned here word for word.

use crate::util::Dir;

fn image(dir: &Dir, elements: &str) {
    dir.write("image.toml", &format!("[image]\nname = \"e\"\nelements = {elements}\n"));
}

#[test]
fn malformed_toml() {
    let dir = Dir::new();
    dir.write("image.toml", "[image\nname = \"e\"\n");
    let r = dir.smelt(&["build", "image.toml"]).fails(1);
    assert_eq!(
        r.stderr,
        "error: unclosed table, expected `]`\n  --> image.toml:1:7\n  |\n1 | [image\n  |       ^\n1 error in input\n"
    );
}

#[test]
fn unknown_keys_are_all_reported_with_their_place() {
    let dir = Dir::new();
    dir.write(
        "image.toml",
        "[image]\nname = \"e\"\nelements = [\"init\"]\ncompresion = \"xz\"\n\n[image.extra]\nfoo = 1\n",
    );
    let r = dir.smelt(&["build", "image.toml"]).fails(1);
    assert_eq!(
        r.stderr,
        "error: unknown key `compresion` in [image]\n  --> image.toml:4:1\n  |\n4 | compresion = \"xz\"\n  | ^\n  = help: remove it or check its spelling; the reference in docs/ lists every key\n\
         \nerror: unknown key `extra` in [image]\n  --> image.toml:6:8\n  |\n6 | [image.extra]\n  |        ^\n  = help: remove it or check its spelling; the reference in docs/ lists every key\n\
         2 errors in input\n"
    );
}

#[test]
fn missing_element_names_who_asked_and_suggests() {
    let dir = Dir::new();
    image(&dir, "[\"init\", \"app\"]");
    dir.write("elements/app/element.toml", "description = \"app\"\ndepends = [\"netwrok\"]\n");
    dir.write("elements/network/element.toml", "description = \"net\"\n");
    let r = dir.build(&[]).fails(1);
    assert_eq!(
        r.stderr,
        "smelt: element `netwrok` not found (wanted by element `app`); did you mean `network`? \
         searched: elements, built-in; `smelt elements list` shows what is there\n"
    );
}

#[test]
fn dependency_cycle_prints_its_chain() {
    let dir = Dir::new();
    image(&dir, "[\"a\"]");
    dir.write("elements/a/element.toml", "description = \"a\"\ndepends = [\"b\"]\n");
    dir.write("elements/b/element-deps", "c\n");
    dir.write("elements/c/element-deps", "a\n");
    let r = dir.build(&[]).fails(1);
    assert_eq!(
        r.stderr,
        "smelt: dependency cycle: a => b => c => a; break it by removing one of these `depends`\n"
    );
}

#[test]
fn duplicate_hook_names_name_both_elements() {
    let dir = Dir::new();
    image(&dir, "[\"a\", \"b\"]");
    dir.write("elements/a/install.d/50-setup", "#!/bin/sh\n");
    dir.write("elements/b/install.d/50-setup", "#!/bin/sh\n");
    let r = dir.build(&[]).fails(1);
    assert_eq!(
        r.stderr,
        "smelt: hook install.d/50-setup is in both element `a` and element `b`: hooks of a phase run in one \
         order by file name, so rename one of them\n"
    );
}

#[test]
fn failing_hook_reports_element_phase_script_status_and_output() {
    let dir = Dir::new();
    image(&dir, "[\"a\"]");
    dir.write("elements/a/post-root.d/20-break", "#!/bin/sh\necho preparing\necho 'disk full' >&2\nexit 7\n");
    let r = dir.build(&[]).fails(1);
    let work = r.stderr.split("kept in ").nth(1).unwrap().split(' ').next().unwrap().to_string();
    assert_eq!(
        r.stderr,
        format!(
            "smelt: hook failed: element `a`, phase post-root.d, script 20-break exited with status 7\n  \
             last lines of its output:\n    preparing\n    disk full\n  full log: {work}/logs/post-root.d-20-break.log\n  \
             the staging tree and logs are kept in {work} (remove it when done)\n"
        )
    );
    let log = std::fs::read_to_string(format!(
        "{}/logs/post-root.d-20-break.log",
        work.replace("[DIR]", dir.path("").to_str().unwrap().trim_end_matches('/'))
    ))
    .unwrap();
    assert_eq!(log, "preparing\ndisk full\n");
    assert!(!dir.path("out/e.cpio.zst").exists());
}

#[test]
fn template_error_names_element_and_template() {
    let dir = Dir::new();
    image(&dir, "[\"a\"]");
    dir.write("elements/a/element.toml", "description = \"a\"\n");
    dir.write("elements/a/templates/etc/motd.tera", "hello {{ params.nope }\n");
    let r = dir.build(&[]).fails(1);
    assert!(r.stderr.starts_with("smelt: element `a`: template templates/etc/motd.tera: "), "{}", r.stderr);
    let undefined = Dir::new();
    image(&undefined, "[\"a\"]");
    undefined.write("elements/a/element.toml", "description = \"a\"\n");
    undefined.write("elements/a/templates/etc/motd.tera", "hello {{ params.nope }}\n");
    let r = undefined.build(&[]).fails(1);
    assert!(r.stderr.starts_with("smelt: element `a`: template templates/etc/motd.tera: "), "{}", r.stderr);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
}

#[test]
fn paths_escaping_the_image_root_are_rejected() {
    let dir = Dir::new();
    image(&dir, "[\"a\"]");
    dir.write(
        "elements/a/element.toml",
        "description = \"a\"\n[[devices]]\npath = \"../../dev/sda\"\nkind = \"block\"\nmajor = 8\n",
    );
    let r = dir.build(&[]).fails(1);
    assert_eq!(
        r.stderr,
        "error: device path `../../dev/sda` escapes the image root\n  --> \
         elements/a/element.toml:3:8\n  |\n3 | path = \"../../dev/sda\"\n  |        ^\n1 error in input\n"
    );
}

#[test]
fn over_budget_exits_3_lists_every_violation_and_publishes_nothing() {
    let dir = Dir::new();
    dir.write(
        "image.toml",
        "[image]\nname = \"big\"\nelements = [\"base-host\", \"a\"]\n[params.base-host]\nbinaries = [\"sh\"]\n",
    );
    dir.write("elements/a/element.toml", "description = \"a\"\n");
    dir.write("elements/a/root/payload/blob", &"z".repeat(300_000));
    dir.write(
        "size-budget.toml",
        "[output.initramfs]\nmax = \"1KiB\"\n[element.a]\nmax = \"100KiB\"\n[path.\"payload\"]\nmax = \"200KiB\"\n",
    );
    let r = dir.build(&[]).fails(3);
    let tail: Vec<&str> = r.stderr.lines().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    assert_eq!(
        tail,
        [
            "smelt: over budget (2 limits exceeded):",
            "  element a: 293.0 KiB of 100.0 KiB allowed (over by 193.0 KiB)",
            "  path /payload: 293.0 KiB of 200.0 KiB allowed (over by 93.0 KiB)",
            "nothing was published; cut what the table above shows, or raise the limits in size-budget.toml",
        ]
    );
    let left: Vec<_> = std::fs::read_dir(dir.path("out")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // Within the tree limits, the compressed output itself is over: still exit 3, and
    // the finished archive is not published.
    dir.write("size-budget.toml", "[output.initramfs]\nmax = \"1KiB\"\n");
    let r = dir.build(&[]).fails(3);
    assert!(
        r.stderr.contains("smelt: over budget (1 limit exceeded):\n  output initramfs: "),
        "{}",
        r.stderr
    );
    let left: Vec<_> = std::fs::read_dir(dir.path("out")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_param_of_the_wrong_type_is_an_error_at_its_place_with_the_choices() {
    let dir = Dir::new();
    dir.write("image.toml", "[image]\nname = \"e\"\nelements = [\"init\"]\n[params.init]\nthen = 5\n");
    let r = dir.build(&[]).fails(1);
    assert_eq!(
        r.stderr,
        "error: param `then` of element `init` takes a string, not `5`, an int\n  --> image.toml:5:8\n  |\n\
         5 | then = 5\n  |        ^\n  = help: one of shell, poweroff, reboot\n1 error in input\n"
    );
    dir.write("image.toml", "[image]\nname = \"e\"\nelements = [\"init\"]\n");
    let r = dir.build(&["--set", "init.then=sideways"]).fails(2);
    assert_eq!(
        r.stderr,
        "smelt: --set init.then=sideways: `sideways` is not a choice of param `then` of element `init`; \
         it takes one of shell, poweroff, reboot\n"
    );
    // A list param checks each item, and takes words from --set.
    dir.write("image.toml", "[image]\nname = \"e\"\nelements = [\"init\", \"network\"]\n");
    let r = dir.smelt(&["plan", "image.toml", "--set", "network.renderers=networkd,wicked"]).fails(2);
    assert_eq!(
        r.stderr,
        "smelt: --set network.renderers=networkd,wicked: `wicked` is not a choice of param `renderers` of \
         element `network`; it takes each item one of networkd, nm-keyfile, ifupdown, ifcfg-rh, ifcfg-suse, \
         netplan, network-data-json, ramdisk\n"
    );
    let plan = dir.smelt(&["plan", "image.toml", "--set", "network.renderers=networkd,netplan"]).ok();
    assert!(plan.stdout.contains("network.renderers = [\"networkd\",\"netplan\"]"), "{}", plan.stdout);
}

#[test]
fn an_element_declaring_a_bad_param_type_or_default_is_an_error_in_its_manifest() {
    let dir = Dir::new();
    image(&dir, "[\"a\"]");
    dir.write(
        "elements/a/element.toml",
        "description = \"a\"\n[params.count]\ntype = \"number\"\n[params.mode]\ntype = \"string\"\n\
         choices = [\"fast\", 3]\ndefault = \"slow\"\n",
    );
    let r = dir.build(&[]).fails(1);
    assert_eq!(
        r.stderr,
        "error: param `count` has unknown type `number`\n  --> elements/a/element.toml:3:8\n  |\n\
         3 | type = \"number\"\n  |        ^\n  = help: types are string, int, bool, list, path, table\n\n\
         error: choice: param `mode` takes a string, not `3`, an int\n  --> elements/a/element.toml:6:20\n  |\n\
         6 | choices = [\"fast\", 3]\n  |                    ^\n\n\
         error: default: `slow` is not a choice of param `mode`\n  --> elements/a/element.toml:7:11\n  |\n\
         7 | default = \"slow\"\n  |           ^\n  = help: one of fast, 3\n3 errors in input\n"
    );
}

#[test]
fn a_malformed_set_is_a_bad_command_line() {
    let dir = Dir::new();
    image(&dir, "[\"init\"]");
    for (set, why) in [
        ("init", "write it as ELEMENT.PARAM=VALUE"),
        ("then=shell", "write it as ELEMENT.PARAM=VALUE"),
        ("int.then=shell", "element `int` is not in this image; did you mean `init`?"),
        ("init.than=shell", "element `init` has no param `than`; did you mean `then`?"),
    ] {
        let r = dir.build(&["--set", set]).fails(2);
        assert_eq!(r.stderr, format!("smelt: --set {set}: {why}\n"));
    }
}

#[test]
fn check_names_a_misspelt_table_and_the_file_it_belongs_to() {
    let dir = Dir::new();
    dir.write("size-budget.toml", "[outputz.iso]\nmax = \"50MiB\"\n");
    let r = dir.smelt(&["check", "size-budget.toml"]).fails(1);
    assert_eq!(
        r.stderr,
        "error: unknown table [outputz]\n  --> size-budget.toml:1:2\n  |\n1 | [outputz.iso]\n  |  ^\n  \
         = help: did you mean [output], as in a size-budget.toml ([output.*], [element.*], [path.*])?\n\
         1 error in input\n"
    );
    // Once one table says what the file is, the others are unknown keys of that kind.
    dir.write("size-budget.toml", "[output.iso]\nmax = \"50MiB\"\n[elemnt.agent]\nmax = \"1MiB\"\n");
    let r = dir.smelt(&["check", "size-budget.toml"]).fails(1);
    assert!(
        r.stderr.starts_with("error: unknown key `elemnt` at the top level\n  --> size-budget.toml:3:2"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_client_without_nodes_is_an_error_at_its_file() {
    let dir = Dir::new();
    dir.write("client.toml", "[client]\nname = \"acme\"\n");
    let r = dir.smelt(&["check", "client.toml"]).fails(1);
    assert_eq!(
        r.stderr,
        "error: client `acme` lists no nodes\n  --> client.toml:1:1\n  |\n1 | [client]\n  | ^\n  \
         = help: add a [[nodes]] table for each node, with its name and links\n1 error in input\n"
    );
    image(&dir, "[\"init\"]");
    let r = dir.build(&["--client", "client.toml"]).fails(1);
    assert!(
        r.stderr.starts_with("error: client `acme` lists no nodes\n  --> client.toml:1:1"),
        "{}",
        r.stderr
    );
}
