//! python-trim on a real virtualenv from PyPI, made by the distribution's Python:
//! trimmed into a data ISO, then its entry point run from a copy of the ISO's contents
//! somewhere else.

use std::process::Command;

use crate::util::{sh, Dir};

#[test]
fn a_trimmed_venv_runs_its_entry_point_from_anywhere() {
    let dir = Dir::heavy();
    let venv = dir.path("build/venv");
    sh(&format!(
        "/usr/bin/python3 -m venv {v} && {v}/bin/pip install -q --disable-pip-version-check cowsay==6.1",
        v = venv.display()
    ));
    let before = sh(&format!("du -sb {} | cut -f1", venv.display())).trim().parse::<u64>().unwrap();
    dir.write(
        "image.toml",
        &format!(
            "[image]\nname = \"kit\"\nelements = [\"agent\", \"python-trim\"]\noutputs = [\"iso\"]\niso-label = \"KIT\"\n\
             [params.agent]\npayload = \"{}\"\ndest = \"/opt/cowsay\"\n[params.python-trim]\nvenv = \"/opt/cowsay\"\n",
            venv.display()
        ),
    );
    dir.build(&[]).ok();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out/report.json")).unwrap()).unwrap();
    let manifest = crate::util::manifest(&dir.path("out"));
    let paths: Vec<&str> = manifest.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    let site = "/opt/cowsay/lib/python3.11/site-packages";
    for gone in ["/opt/cowsay/bin/pip", "/opt/cowsay/bin/activate"] {
        assert!(!paths.contains(&gone), "{gone} was kept");
    }
    assert!(!paths
        .iter()
        .any(|p| p.starts_with(&format!("{site}/pip")) || p.starts_with(&format!("{site}/setuptools"))));
    assert!(!paths.iter().any(|p| p.contains("__pycache__") || p.contains("/tests/")));
    assert!(
        paths.contains(&format!("{site}/cowsay/main.pyc").as_str())
            && !paths.contains(&format!("{site}/cowsay/main.py").as_str())
    );
    assert!(paths.contains(&format!("{site}/cowsay-6.1.dist-info/METADATA").as_str()));
    let after: u64 = report["tree"]["elements"]["agent"]["apparent_bytes"].as_u64().unwrap()
        + report["tree"]["elements"]["python-trim"]["apparent_bytes"].as_u64().unwrap();
    assert!(after * 20 < before, "trimmed {before} bytes to only {after}");

    // Elsewhere: a copy of what the ISO holds, under another directory.
    let copy = dir.path("elsewhere/copy");
    std::fs::create_dir_all(&copy).unwrap();
    sh(&format!("cd {} && bsdtar -xf {} opt", copy.display(), dir.path("out/kit.iso").display()));
    let leftover = sh(&format!("grep -rl '{}' {} || true", venv.display(), copy.display()));
    assert!(leftover.trim().is_empty(), "files still name the build path:\n{leftover}");
    let out = Command::new(copy.join("opt/cowsay/bin/cowsay"))
        .args(["-t", "moo from a copy"])
        .current_dir("/")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("| moo from a copy |"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
