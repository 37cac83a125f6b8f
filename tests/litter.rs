//! A stopped build leaves nothing behind: Ctrl-C and SIGTERM remove what it wrote and
//! stop its hooks; after a SIGKILL the next build sweeps what the dead one left; two
//! builds never write into one output directory at once.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::util::{Dir, Image};

/// An image whose host hook writes its shell's PID to `mark` and then sleeps.
fn sleeper(dir: &Dir) {
    dir.image(&Image::new("s", &["slow"]));
    dir.write("elements/slow/root/etc/motd", "hi\n");
    dir.write(
        "elements/slow/post-root.d/50-sleep",
        "#!/bin/sh\necho $$ > \"$DIB_TEST_MARK\"\nexec sleep 60\n",
    );
}

fn start(dir: &Dir, out: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_smelt"))
        .args(["build", "image.toml", "--elements-path", "elements", "-o", out])
        .current_dir(dir.path(""))
        .env_remove("SMELT_ELEMENTS_PATH")
        .env("DIB_TEST_MARK", dir.path("mark"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The hook's PID, once it runs.
fn hook_started(dir: &Dir) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = std::fs::read_to_string(dir.path("mark")).ok().and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the hook never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

fn contents(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    names.sort();
    names
}

#[test]
fn ctrl_c_and_sigterm_stop_the_hooks_and_remove_what_the_build_wrote() {
    for (signal, code, said) in [(libc::SIGINT, 130, "interrupted"), (libc::SIGTERM, 143, "terminated")] {
        let dir = Dir::new();
        sleeper(&dir);
        let child = start(&dir, "out");
        let hook = hook_started(&dir);
        assert!(!contents(&dir.path("out")).is_empty(), "the work directory is there while the hook runs");
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(
            stderr.ends_with(&format!("smelt: {said}; removed what this build had written\n")),
            "{stderr}"
        );
        assert_eq!(contents(&dir.path("out")), Vec::<String>::new());
        assert!(!alive(hook), "the hook (pid {hook}) outlived the build");
    }
}

#[test]
fn the_next_build_sweeps_what_a_killed_build_left() {
    let dir = Dir::new();
    sleeper(&dir);
    let mut child = start(&dir, "out");
    let hook = hook_started(&dir);
    let pid = child.id();
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    child.wait().unwrap();
    // Nothing can catch SIGKILL: the work directory stays, and the orphaned hook runs on.
    assert_eq!(contents(&dir.path("out")), [format!(".smelt-work.partial-{pid}")]);
    unsafe { libc::kill(hook, libc::SIGKILL) };
    // A partial output of a live process is not touched.
    let live = format!(".s.cpio.zst.partial-{}", std::process::id());
    std::fs::write(dir.path("out").join(&live), "x").unwrap();

    dir.write("elements/slow/post-root.d/50-sleep", "#!/bin/sh\ntrue\n");
    let r = dir.build(&[]).ok();
    assert!(
        r.stderr.starts_with(&format!(
            "smelt: removed what stopped builds left: out/.smelt-work.partial-{pid}\n"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(
        contents(&dir.path("out")),
        [live.as_str(), "manifest.jsonl.zst", "report.json", "s.cpio.zst", "smelt.lock"]
    );
}

#[test]
fn a_second_build_into_the_same_directory_names_the_one_writing_there() {
    let dir = Dir::new();
    sleeper(&dir);
    let first = start(&dir, "out");
    hook_started(&dir);
    let r = dir.build(&[]).fails(1);
    assert_eq!(
        r.stderr,
        format!(
            "smelt: out is being written by another build (pid {}: {} build image.toml --elements-path elements \
             -o out); wait for it to finish, or build into another directory with -o\n",
            first.id(),
            env!("CARGO_BIN_EXE_smelt")
        )
    );
    // Another directory is fine meanwhile.
    dir.image_at("image2.toml", &Image::new("t", &["init"]));
    dir.smelt(&["build", "image2.toml", "-o", "other", "-q"]).ok();
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    assert_eq!(first.wait_with_output().unwrap().status.code(), Some(143));
}
