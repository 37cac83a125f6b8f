//! `smelt elements list|show`: what is on the element path.

use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::json;

use crate::config::names::Named;
use crate::config::source::suggest;
use crate::element::hooks::PHASES;
use crate::element::library::Library;
use crate::element::manifest::Form;
use crate::element::{FileKind, Origin};

pub fn list(elements_path: &[PathBuf], as_json: bool) -> anyhow::Result<String> {
    let lib = Library::from_env(elements_path);
    let mut rows = Vec::new();
    for (name, origin) in lib.names() {
        let e = lib.load(&name)?.context("listed")?;
        let form = match (&origin, e.manifest.form) {
            (Origin::BuiltIn, _) => "built-in",
            (_, Form::Native) => "toml",
            (_, Form::Dib) => "dib",
        };
        // The phases this element has hooks in, in the order they run.
        let phases: Vec<&str> =
            PHASES.iter().map(|(p, _)| *p).filter(|p| e.files_under(p).next().is_some()).collect();
        let mut description = e.manifest.description.clone();
        if crate::element::hooks::done_natively(&e) {
            description = format!("(its hooks done natively by smelt) {description}");
        }
        rows.push((name, form, phases, origin.to_string(), description));
    }
    if as_json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(n, f, p, o, d)| json!({"name": n, "form": f, "phases": p, "origin": o, "description": d}))
            .collect();
        return Ok(serde_json::to_string_pretty(&doc)? + "\n");
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, form, phases, origin, description) in &rows {
        out.push_str(&format!("{name:<width$}  {form:<8}  {description}\n"));
        // A second line for where it comes from and which phases it hooks.
        let mut more = Vec::new();
        if *form != "built-in" {
            more.push(origin.clone());
        }
        if !phases.is_empty() {
            more.push(format!("phases: {}", phases.join(" ")));
        }
        if !more.is_empty() {
            out.push_str(&format!("{:width$}  {}\n", "", more.join("; ")));
        }
    }
    Ok(out)
}

pub fn show(elements_path: &[PathBuf], name: &str, as_json: bool) -> anyhow::Result<String> {
    let lib = Library::from_env(elements_path);
    let Some(e) = lib.load(name)? else {
        let names = lib.names();
        let hint = suggest(name, names.iter().map(|(n, _)| n.as_str()))
            .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
        anyhow::bail!("element `{name}` not found (searched: {}){hint}", lib.describe());
    };
    let hooks: Vec<(String, String)> = PHASES
        .iter()
        .flat_map(|(phase, _)| e.files_under(phase).map(move |(n, _)| (phase.to_string(), n.to_string())))
        .collect();
    // Everything but directories: the element's own files, then its `root/` overlay.
    let mut files: Vec<String> = e
        .files
        .iter()
        .filter(|f| !matches!(f.kind, FileKind::Dir) && !f.rel.starts_with("root/"))
        .map(|f| f.rel.clone())
        .collect();
    e.visit_root(|rel, f| {
        if !matches!(f.kind, FileKind::Dir) {
            files.push(format!("root/{rel}"));
        }
        Ok(())
    })?;
    if as_json {
        let doc = json!({
            "name": e.name,
            "origin": e.origin.to_string(),
            "manifest": e.manifest,
            "files": files,
            "hooks": hooks.iter().map(|(p, n)| format!("{p}/{n}")).collect::<Vec<_>>(),
        });
        return Ok(serde_json::to_string_pretty(&doc)? + "\n");
    }
    let m = &e.manifest;
    let mut s = format!("{} ({:?} form, {})\n  {}\n", e.name, m.form, e.origin, m.description);
    for (label, list) in [("depends", &m.depends), ("provides", &m.provides), ("conflicts", &m.conflicts)] {
        if !list.is_empty() {
            s.push_str(&format!("{label}: {}\n", list.join(", ")));
        }
    }
    if !m.params.is_empty() {
        s.push_str("params:\n");
        for (k, p) in &m.params {
            let default = p.default.as_ref().map_or("(no default)".to_string(), |d| d.to_string());
            let takes = match (p.kind, p.choices.as_slice()) {
                (kind, []) => kind.map_or("any value".to_string(), |k| k.name().to_string()),
                (kind, choices) => format!(
                    "{}: {}",
                    kind.map_or("any", |k| k.name()),
                    choices.iter().map(crate::element::param::shown).collect::<Vec<_>>().join(" | ")
                ),
            };
            s.push_str(&format!(
                "  {k} = {default}  ({takes})\n      {}\n",
                p.description.as_deref().unwrap_or("")
            ));
        }
    }
    if !hooks.is_empty() {
        s.push_str("hooks:\n");
        for (p, n) in &hooks {
            s.push_str(&format!("  {p}/{n}\n"));
        }
    }
    s.push_str("files:\n");
    for f in &files {
        s.push_str(&format!("  {f}\n"));
    }
    Ok(s)
}
