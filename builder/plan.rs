//! The plan: everything a build will do, decided before anything is written — the
//! checked image, resolved elements, their params, hooks in run order, the budget.
//! `smelt plan` prints it; `smelt build` carries it out.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use serde_json::Value;

use crate::builtin::{self, BuiltIns, Planning};
use crate::config::budget::{self, Budget};
use crate::config::client::Client;
use crate::config::image::{self, Image, KeyAt, Signing};
use crate::config::source::{suggest, Diagnostics, TomlFile};
use crate::distro;
use crate::efi::signer::KeyFile;
use crate::element::hooks::{self, Hooks};
use crate::element::library::Library;
use crate::element::manifest::Form;
pub use crate::element::param::Params;
use crate::element::resolve::{resolve, Resolved};
use crate::kernel;

/// What the user handed to `build` or `plan`.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub image: PathBuf,
    pub client: Option<PathBuf>,
    pub elements_path: Vec<PathBuf>,
    /// `ELEMENT.PARAM=VALUE`
    pub sets: Vec<String>,
    pub offline: bool,
    pub source_date_epoch: Option<i64>,
}

pub struct Plan {
    pub image: Image,
    pub resolved: Resolved,
    /// Every element's params: defaults, then `[params.X]`, then `--set`.
    pub params: BTreeMap<String, Params>,
    /// The built-in elements' work, their params typed.
    pub builtins: BuiltIns,
    pub hooks: Hooks,
    pub budget: Budget,
    /// The checked client inventory, when one is given.
    pub client: Option<Client>,
    /// The kernel the outputs boot, when `kernel` is set.
    pub kernel: Option<kernel::Planned>,
    /// `SOURCE_DATE_EPOCH`, when given: every timestamp is clamped to it.
    pub epoch: Option<i64>,
    /// DIB's `DISTRO_NAME` for the image, and its family (pkg-map, package manager).
    pub distro: String,
    pub family: &'static str,
    /// DIB's `DIB_RELEASE` and `DIB_INIT_SYSTEM`, as the base says them.
    pub release: Option<String>,
    pub init_system: Option<String>,
    /// The build's one time, for everything it dates: `SOURCE_DATE_EPOCH`, else the
    /// clock read once, here, so all of one build's timestamps are the same second.
    pub time: i64,
    pub offline: bool,
    /// `[secure-boot]`'s key and certificate, read and checked: what signs the UKI.
    pub signer: Option<KeyFile>,
}

pub fn make(inputs: &Inputs) -> anyhow::Result<Plan> {
    let file = TomlFile::read(&inputs.image)?;
    let image = image::check(&file)?;
    let lib = Library::from_env(&inputs.elements_path);
    let resolved = resolve(&lib, &image.elements)?;
    let diags = image::unknown_param_tables(&file, &image, &resolved.names());
    if !diags.is_empty() {
        return Err(Diagnostics(diags).into());
    }
    let params = merge_params(&file, &image, &resolved, &inputs.sets)?;
    let builtins = builtin::load(&resolved.elements, &params)?;
    let kernel = image.kernel.as_ref().map(kernel::plan).transpose()?;
    let identity = builtins.identity(&image, inputs.offline)?;
    let distro =
        std::env::var("DISTRO_NAME").ok().or(identity.distro.clone()).unwrap_or_else(|| "debian".into());
    let family = distro::family(&distro);
    // What `when` conditions of package-installs.yaml read: the caller's environment,
    // then what the base tells hooks.
    let when_env = |k: &str| {
        std::env::var(k).ok().or_else(|| match k {
            "DISTRO_NAME" => Some(distro.clone()),
            "DIB_PYTHON_VERSION" => Some("3".into()),
            "DIB_RELEASE" => identity.release.clone(),
            "DIB_INIT_SYSTEM" => identity.init_system.clone(),
            _ => None,
        })
    };
    let planning = Planning {
        image: &image,
        elements: &resolved.elements,
        kernel: kernel.as_ref(),
        family,
        env: &when_env,
    };
    let generated = builtins.hooks(&planning)?;
    let kernel_from_image = matches!(kernel, Some(kernel::Planned::Image));
    let hooks = hooks::collect(&resolved.elements, generated, &|k| std::env::var(k).ok(), kernel_from_image)?;
    let budget = find_budget(&image)?;
    let client = inputs.client.as_deref().map(crate::config::client::load).transpose()?;
    let signer = image.signing.as_ref().map(|s| load_signer(s, &image)).transpose()?;
    Ok(Plan {
        image,
        resolved,
        params,
        builtins,
        hooks,
        budget,
        client,
        kernel,
        epoch: inputs.source_date_epoch,
        distro,
        family,
        release: identity.release.clone(),
        init_system: identity.init_system.clone(),
        time: inputs.source_date_epoch.unwrap_or_else(crate::ui::now),
        offline: inputs.offline,
        signer,
    })
}

/// Reads and checks `[secure-boot]`'s key and certificate, against the clock (a
/// certificate must be valid when what it signs boots, not when its inputs were dated).
fn load_signer(s: &Signing, image: &Image) -> anyhow::Result<KeyFile> {
    let env = |var: &str, what: &str| {
        std::env::var(var).map_err(|_| {
            anyhow::anyhow!(
                "{}: [secure-boot] {what} names the variable {var}, which is not set: export it for the build",
                image.file.display()
            )
        })
    };
    let key = match &s.key {
        KeyAt::Path(p) => p.clone(),
        KeyAt::Env(var) => image.dir().join(env(var, "key-env")?),
    };
    let password = s.password_env.as_deref().map(|v| env(v, "key-password-env")).transpose()?;
    Ok(KeyFile::load(&key, &s.cert, password.as_deref(), crate::ui::now())?)
}

impl Plan {
    /// The client's nodes; none without a client.
    pub fn nodes(&self) -> &[crate::config::client::Node] {
        self.client.as_ref().map_or(&[], |c| c.nodes.as_slice())
    }
}

/// The image's own budget file, else `size-budget.toml` beside it, else the built-in.
fn find_budget(image: &Image) -> anyhow::Result<Budget> {
    if let Some(path) = &image.budget {
        if !path.exists() {
            bail!("the budget file {} named in {} does not exist", path.display(), image.file.display());
        }
        return budget::load(path);
    }
    let beside = image.dir().join("size-budget.toml");
    if beside.exists() {
        return budget::load(&beside);
    }
    Ok(budget::built_in())
}

fn merge_params(
    file: &TomlFile,
    image: &Image,
    resolved: &Resolved,
    sets: &[String],
) -> anyhow::Result<BTreeMap<String, Params>> {
    let mut all: BTreeMap<String, Params> = BTreeMap::new();
    let mut diags = Vec::new();
    for e in &resolved.elements {
        let declared = &e.manifest.params;
        let mut params: Params =
            declared.iter().filter_map(|(k, p)| Some((k.clone(), p.default.clone()?))).collect();
        for (k, v) in image.params.get(&e.name).into_iter().flatten() {
            let value = match declared.get(k) {
                Some(param) => match param.check(v, &format!("param `{k}` of element `{}`", e.name)) {
                    Ok(value) => value,
                    Err(m) => {
                        let item = m.item.map(|i| i.to_string());
                        let at: Vec<&str> =
                            ["params", e.name.as_str(), k].into_iter().chain(item.as_deref()).collect();
                        diags.push(file.error_at(&at, m.message, m.help));
                        continue;
                    }
                },
                None if e.manifest.form == Form::Native => {
                    diags.push(file.error_at(
                        &["params", &e.name, k],
                        format!("element `{}` has no param `{k}`", e.name),
                        Some(param_hint(k, declared.keys())),
                    ));
                    continue;
                }
                None => v.clone(),
            };
            params.insert(k.clone(), value);
        }
        all.insert(e.name.clone(), params);
    }
    if !diags.is_empty() {
        return Err(Diagnostics(diags).into());
    }
    for set in sets {
        let bad = |why: String| BadCommandLine(format!("--set {set}: {why}"));
        let (key, raw) = set.split_once('=').ok_or_else(|| bad("write it as ELEMENT.PARAM=VALUE".into()))?;
        let (element, param) =
            key.split_once('.').ok_or_else(|| bad("write it as ELEMENT.PARAM=VALUE".into()))?;
        let Some(e) = resolved.get(element) else {
            let hint = suggest(element, resolved.names())
                .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
            return Err(bad(format!("element `{element}` is not in this image{hint}")).into());
        };
        let value = match e.manifest.params.get(param) {
            Some(p) => p
                .check(&parse_value(raw), &format!("param `{param}` of element `{element}`"))
                .map_err(|m| bad(m.message + &m.help.map_or(String::new(), |h| format!("; it takes {h}"))))?,
            None if e.manifest.form == Form::Native => {
                return Err(bad(format!(
                    "element `{element}` has no param `{param}`; {}",
                    param_hint(param, e.manifest.params.keys())
                ))
                .into());
            }
            None => parse_value(raw),
        };
        all.get_mut(element).expect("every element has params").insert(param.into(), value);
    }
    Ok(all)
}

/// A mistake on the command line itself (exit 2, as for clap's own errors).
#[derive(Debug)]
pub struct BadCommandLine(pub String);

impl std::fmt::Display for BadCommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadCommandLine {}

fn param_hint<'a>(name: &str, known: impl Iterator<Item = &'a String> + Clone) -> String {
    match suggest(name, known.clone().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`?"),
        None => {
            let list: Vec<&str> = known.map(String::as_str).collect();
            if list.is_empty() {
                "it takes no params".into()
            } else {
                format!("its params are {}", list.join(", "))
            }
        }
    }
}

/// A `--set` value: any TOML value (`3`, `true`, `["a", "b"]`), else the text itself.
fn parse_value(raw: &str) -> Value {
    #[derive(serde::Deserialize)]
    struct One {
        v: Value,
    }
    toml_edit::de::from_str::<One>(&format!("v = {raw}"))
        .map(|o| o.v)
        .unwrap_or_else(|_| Value::String(raw.into()))
}

/// A param as a hook sees it in `SMELT_PARAM_*`: strings as they are, lists of plain
/// values joined by spaces, anything else as JSON.
pub fn param_env_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => {
            items.iter().map(param_env_value).collect::<Vec<_>>().join(" ")
        }
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn param_env_name(element: &str, param: &str) -> String {
    format!("SMELT_PARAM_{}_{}", element, param).to_uppercase().replace(['-', '.'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_values() {
        assert_eq!(parse_value("3"), Value::from(3));
        assert_eq!(parse_value("[\"a\"]"), serde_json::json!(["a"]));
        assert_eq!(parse_value("poweroff"), Value::from("poweroff"));
    }

    #[test]
    fn env_names_and_values() {
        assert_eq!(param_env_name("base-host", "binaries"), "SMELT_PARAM_BASE_HOST_BINARIES");
        assert_eq!(param_env_value(&serde_json::json!(["sh", "ls"])), "sh ls");
    }
}
