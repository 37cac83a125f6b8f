//! `smelt inspect FILE`: what an initramfs or ISO holds — every path with its type,
//! mode, owner and size, then the directories that weigh most; of an EFI binary (a
//! UKI, a loader, a kernel), its sections, what a UKI boots, and its signatures.

use std::path::Path;

use serde_json::json;

use crate::config::size::human;
use crate::inspect;

pub fn inspect(path: &Path, as_json: bool) -> anyhow::Result<String> {
    if crate::efi::looks_like_pe(path) {
        return efi(path, as_json);
    }
    let listing = inspect::read(path)?;
    let dirs = listing.dir_totals();
    if as_json {
        let doc = json!({
            "file": path.display().to_string(),
            "format": listing.format,
            "compressions": listing.compressions,
            "entries": listing.items.values().collect::<Vec<_>>(),
            "dirs": dirs,
            "total_bytes": listing.total_bytes(),
        });
        return Ok(serde_json::to_string_pretty(&doc)? + "\n");
    }
    let what = match listing.format {
        "iso" if listing.compressions.is_empty() => "ISO 9660".to_string(),
        "iso" => format!("ISO 9660 ({} files)", listing.compressions.join(" + ")),
        "manifest" => "a build's manifest".to_string(),
        _ => format!("initramfs ({})", listing.compressions.join(" + ")),
    };
    let mut s = format!(
        "{}: {what}, {} entries, {} in files\n\n",
        path.display(),
        listing.items.len(),
        human(listing.total_bytes())
    );
    for i in listing.items.values() {
        let target = i.target.as_ref().map_or(String::new(), |t| format!(" -> {t}"));
        let size = i.rdev.map_or(i.size.to_string(), |(major, minor)| format!("{major}, {minor}"));
        s.push_str(&format!(
            "{}{} {:>5} {:>5} {size:>12}  {}{target}\n",
            i.kind, i.mode, i.uid, i.gid, i.path
        ));
    }
    let mut heavy: Vec<(&String, &u64)> = dirs.iter().collect();
    heavy.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    s.push_str("\nlargest directories:\n");
    for (dir, bytes) in heavy.into_iter().take(15) {
        s.push_str(&format!("  {:>12}  {dir}\n", human(*bytes)));
    }
    Ok(s)
}

fn efi(path: &Path, as_json: bool) -> anyhow::Result<String> {
    let d = crate::efi::describe(path)?;
    if as_json {
        let mut doc = serde_json::to_value(&d)?;
        doc["file"] = json!(path.display().to_string());
        doc["format"] = json!("efi");
        return Ok(serde_json::to_string_pretty(&doc)? + "\n");
    }
    let what =
        if d.sections.iter().any(|s| s.name == ".linux") { "unified kernel image" } else { "EFI binary" };
    let mut s = format!("{}: {what}, {} sections\n", path.display(), d.sections.len());
    for (label, value) in [("kernel", &d.kernel_release), ("cmdline", &d.cmdline), ("os", &d.os)] {
        if let Some(v) = value {
            s.push_str(&format!("  {label:<8} {v}\n"));
        }
    }
    s.push_str(&format!("\nauthenticode sha256 {}\n", d.authenticode_sha256));
    if d.signatures.is_empty() {
        s.push_str("unsigned\n");
    }
    for sig in &d.signatures {
        let verdict = if sig.verifies { "verifies" } else { "DOES NOT VERIFY" };
        s.push_str(&format!("signed by {} ({verdict})\n", sig.signer));
    }
    s.push_str("\nsection        in memory      on disk  sha256\n");
    for sec in &d.sections {
        s.push_str(&format!(
            "{:<10} {:>12} {:>12}  {}\n",
            sec.name,
            human(sec.virtual_size.into()),
            human(sec.raw_size.into()),
            &sec.sha256[..16]
        ));
    }
    Ok(s)
}
