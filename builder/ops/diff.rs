//! `smelt diff OLD NEW`: what grew, shrank, appeared and vanished between two outputs,
//! by path and by directory, largest change first.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::config::size::human;
use crate::inspect::{self, Item};

#[derive(Serialize)]
struct PathChange {
    path: String,
    /// `added`, `removed` or `changed`.
    change: &'static str,
    old_bytes: u64,
    new_bytes: u64,
    delta: i64,
    /// What else changed: mode, owner, type, link target, or content (same size, other bytes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    also: Vec<&'static str>,
}

#[derive(Serialize)]
struct DirChange {
    path: String,
    old_bytes: u64,
    new_bytes: u64,
    delta: i64,
}

pub fn diff(old: &Path, new: &Path, as_json: bool) -> anyhow::Result<String> {
    if crate::efi::looks_like_pe(old) && crate::efi::looks_like_pe(new) {
        return efi(old, new, as_json);
    }
    let (a, b) = (inspect::read(old)?, inspect::read(new)?);
    let paths: BTreeSet<&String> = a.items.keys().chain(b.items.keys()).collect();
    let mut changes: Vec<PathChange> =
        paths.into_iter().filter_map(|p| change(p, a.items.get(p), b.items.get(p))).collect();
    changes.sort_by(|x, y| y.delta.abs().cmp(&x.delta.abs()).then(x.path.cmp(&y.path)));
    let (old_dirs, new_dirs) = (a.dir_totals(), b.dir_totals());
    let mut dirs: Vec<DirChange> = old_dirs
        .keys()
        .chain(new_dirs.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|d| {
            let (o, n) = (old_dirs.get(d).copied().unwrap_or(0), new_dirs.get(d).copied().unwrap_or(0));
            DirChange { path: d.clone(), old_bytes: o, new_bytes: n, delta: n as i64 - o as i64 }
        })
        .filter(|d| d.delta != 0)
        .collect();
    dirs.sort_by(|x, y| y.delta.abs().cmp(&x.delta.abs()).then(x.path.cmp(&y.path)));
    let count = |c: &str| changes.iter().filter(|x| x.change == c).count();
    let total = b.total_bytes() as i64 - a.total_bytes() as i64;
    if as_json {
        let doc = serde_json::json!({
            "old": old.display().to_string(),
            "new": new.display().to_string(),
            "delta_bytes": total,
            "paths": changes,
            "dirs": dirs,
        });
        return Ok(serde_json::to_string_pretty(&doc)? + "\n");
    }
    let mut s = format!(
        "{} -> {}: {} added, {} removed, {} changed; {} in files\n",
        old.display(),
        new.display(),
        count("added"),
        count("removed"),
        count("changed"),
        signed(total)
    );
    if !changes.is_empty() {
        s.push_str("\npaths:\n");
    }
    for c in &changes {
        let mark = match c.change {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        let also = if c.also.is_empty() { String::new() } else { format!("  ({})", c.also.join(", ")) };
        s.push_str(&format!("  {mark} {:>12}  {}{also}\n", signed(c.delta), c.path));
    }
    if !dirs.is_empty() {
        s.push_str("\ndirectories:\n");
    }
    for d in &dirs {
        s.push_str(&format!(
            "  {:>12}  {}  ({} -> {})\n",
            signed(d.delta),
            d.path,
            human(d.old_bytes),
            human(d.new_bytes)
        ));
    }
    Ok(s)
}

fn change(path: &str, old: Option<&Item>, new: Option<&Item>) -> Option<PathChange> {
    let (kind, o, n, also) = match (old, new) {
        (None, Some(n)) => ("added", 0, n.size, Vec::new()),
        (Some(o), None) => ("removed", o.size, 0, Vec::new()),
        (Some(o), Some(n)) => {
            let mut also = Vec::new();
            for (what, differs) in [
                ("type", o.kind != n.kind),
                ("mode", o.mode != n.mode),
                ("owner", (o.uid, o.gid) != (n.uid, n.gid)),
                ("target", o.target != n.target),
            ] {
                if differs {
                    also.push(what);
                }
            }
            // Same size, other bytes: an address in a config file, a rebuilt binary.
            let content = o.sha256.is_some() && n.sha256.is_some() && o.sha256 != n.sha256;
            if content && o.size == n.size {
                also.push("content");
            }
            if o.size == n.size && also.is_empty() {
                return None;
            }
            ("changed", o.size, n.size, also)
        }
        (None, None) => return None,
    };
    Some(PathChange {
        path: path.into(),
        change: kind,
        old_bytes: o,
        new_bytes: n,
        delta: n as i64 - o as i64,
        also,
    })
}

fn signed(delta: i64) -> String {
    let sign = match delta.signum() {
        -1 => "-",
        1 => "+",
        _ => "",
    };
    format!("{sign}{}", human(delta.unsigned_abs()))
}

#[derive(Serialize)]
struct SectionChange {
    name: String,
    /// `added`, `removed`, `changed` or `same`.
    change: &'static str,
    old_bytes: u64,
    new_bytes: u64,
}

/// Two EFI binaries (UKIs) section by section: which sections differ and by how much,
/// what each boots, and who signed each.
fn efi(old: &Path, new: &Path, as_json: bool) -> anyhow::Result<String> {
    let (a, b) = (crate::efi::describe(old)?, crate::efi::describe(new)?);
    let mut names: Vec<&str> = a.sections.iter().map(|s| s.name.as_str()).collect();
    names.extend(
        b.sections.iter().map(|s| s.name.as_str()).filter(|n| !a.sections.iter().any(|s| s.name == *n)),
    );
    let changes: Vec<SectionChange> = names
        .into_iter()
        .map(|name| {
            let (x, y) =
                (a.sections.iter().find(|s| s.name == name), b.sections.iter().find(|s| s.name == name));
            let change = match (x, y) {
                (Some(_), None) => "removed",
                (None, Some(_)) => "added",
                (Some(x), Some(y)) if x.sha256 == y.sha256 => "same",
                _ => "changed",
            };
            let size = |s: Option<&crate::efi::DescribedSection>| s.map_or(0, |s| u64::from(s.virtual_size));
            SectionChange { name: name.to_string(), change, old_bytes: size(x), new_bytes: size(y) }
        })
        .collect();
    let signers =
        |d: &crate::efi::Described| d.signatures.iter().map(|s| s.signer.clone()).collect::<Vec<_>>();
    if as_json {
        let doc = serde_json::json!({
            "old": old.display().to_string(),
            "new": new.display().to_string(),
            "sections": changes,
            "kernel_release": [a.kernel_release, b.kernel_release],
            "cmdline": [a.cmdline, b.cmdline],
            "signers": [signers(&a), signers(&b)],
        });
        return Ok(serde_json::to_string_pretty(&doc)? + "\n");
    }
    let differ = changes.iter().filter(|c| c.change != "same").count();
    let mut s =
        format!("{} -> {}: {differ} of {} sections differ\n\n", old.display(), new.display(), changes.len());
    for c in &changes {
        let mark = match c.change {
            "added" => '+',
            "removed" => '-',
            "changed" => '~',
            _ => ' ',
        };
        let delta = c.new_bytes as i64 - c.old_bytes as i64;
        s.push_str(&format!(
            "{mark} {:<10} {:>12} -> {:>12}  {}\n",
            c.name,
            human(c.old_bytes),
            human(c.new_bytes),
            if c.change == "same" { String::new() } else { signed(delta) }
        ));
    }
    for (label, x, y) in
        [("kernel", &a.kernel_release, &b.kernel_release), ("cmdline", &a.cmdline, &b.cmdline)]
    {
        if x != y {
            s.push_str(&format!(
                "\n{label}: {} -> {}",
                x.as_deref().unwrap_or("-"),
                y.as_deref().unwrap_or("-")
            ));
        }
    }
    let (sa, sb) = (signers(&a), signers(&b));
    if sa != sb {
        let show = |v: &[String]| if v.is_empty() { "unsigned".to_string() } else { v.join("; ") };
        s.push_str(&format!("\nsigned by: {} -> {}", show(&sa), show(&sb)));
    }
    if !s.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}
