//! `smelt plan`: what a build would do — elements and who pulled each in, hooks in run
//! order, params, outputs and budget — with nothing built.

use serde_json::json;

use crate::config::names::Named;
use crate::element::hooks::PHASES;
use crate::plan::{self, Inputs};

pub fn plan(inputs: &Inputs, as_json: bool) -> anyhow::Result<String> {
    let p = plan::make(inputs)?;
    if as_json {
        let elements: Vec<_> = p
            .resolved
            .elements
            .iter()
            .zip(&p.resolved.wanted_by)
            .map(|(e, by)| json!({"name": e.name, "origin": e.origin.to_string(), "wanted_by": by, "params": p.params[&e.name]}))
            .collect();
        let hooks: Vec<_> = PHASES
            .iter()
            .flat_map(|(phase, side)| {
                p.hooks
                    .phase(phase)
                    .iter()
                    .map(move |h| json!({"phase": phase, "side": side, "name": h.name, "element": h.element}))
            })
            .collect();
        let doc = json!({
            "image": p.image.name,
            "distro": p.distro,
            "family": p.family,
            "release": p.release,
            "init_system": p.init_system,
            "elements": elements,
            "hooks": hooks,
            "outputs": p.image.outputs,
            "compression": p.image.compression,
            "budget": {"source": p.budget.source_name(), "limits": p.budget.limits},
        });
        return Ok(serde_json::to_string_pretty(&doc)? + "\n");
    }
    let mut s = format!("image {}\n\nelements, in build order:\n", p.image.name);
    for (e, by) in p.resolved.elements.iter().zip(&p.resolved.wanted_by) {
        let wanters: Vec<String> = by
            .iter()
            .map(
                |(w, as_name)| {
                    if *as_name == e.name {
                        w.to_string()
                    } else {
                        format!("{w} (as `{as_name}`)")
                    }
                },
            )
            .collect();
        s.push_str(&format!(
            "  {:<20} {:<10} wanted by {}\n",
            e.name,
            short_origin(&e.origin),
            wanters.join(", ")
        ));
    }
    s.push_str("\nhooks, in run order:\n");
    let mut any = false;
    for (phase, side) in PHASES {
        for h in p.hooks.phase(phase) {
            any = true;
            let note = match h.harvest.as_ref().and_then(|h| h.note()) {
                Some(n) => format!("  ({n})"),
                None => String::new(),
            };
            s.push_str(&format!("  {phase:<15} {:<24} {:<20} {side:?}{note}\n", h.name, h.element));
        }
    }
    if !any {
        s.push_str("  (none)\n");
    }
    s.push_str("\nparams:\n");
    for (element, params) in &p.params {
        for (k, v) in params {
            s.push_str(&format!("  {element}.{k} = {v}\n"));
        }
    }
    let outputs: Vec<&str> = p.image.outputs.iter().map(|o| o.name()).collect();
    s.push_str(&format!("\noutputs: {} (compression {})\n", outputs.join(", "), p.image.compression));
    s.push_str(&format!("budget ({}):\n", p.budget.source_name()));
    for l in &p.budget.limits {
        s.push_str(&format!("  {} <= {}\n", l.subject, crate::config::size::human(l.max)));
    }
    Ok(s)
}

fn short_origin(o: &crate::element::Origin) -> String {
    match o {
        crate::element::Origin::BuiltIn => "built-in".into(),
        crate::element::Origin::Dir(d) => d.display().to_string(),
    }
}
