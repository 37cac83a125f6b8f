//! An element's params: the type each declares (`string`, `int`, `bool`, `list`, `path`,
//! `table`) and its `choices`, and the check every value goes through — the element's
//! own default, `[params.X]` in image.toml and `--set` alike.

use std::collections::BTreeMap;

use serde_json::Value;

pub use crate::config::names::Named;

/// One element's params by name: checked values, as templates and hooks see them.
pub type Params = BTreeMap<String, Value>;

/// What a param takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Bool,
    /// A list of values; a string of words separated by spaces or commas (as
    /// `--set e.p=a,b` gives it) is taken as that list.
    List,
    /// A path on the host (relative to image.toml) or in the image, as the param says.
    Path,
    Table,
}

impl Named for ParamType {
    const NAMES: &'static [(&'static str, ParamType)] = &[
        ("string", ParamType::String),
        ("int", ParamType::Int),
        ("bool", ParamType::Bool),
        ("list", ParamType::List),
        ("path", ParamType::Path),
        ("table", ParamType::Table),
    ];
}

impl ParamType {
    /// The type a default value implies, for params that declare none.
    pub fn of(value: &Value) -> Option<ParamType> {
        match value {
            Value::String(_) => Some(ParamType::String),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(ParamType::Int),
            Value::Bool(_) => Some(ParamType::Bool),
            Value::Array(_) => Some(ParamType::List),
            Value::Object(_) => Some(ParamType::Table),
            _ => None,
        }
    }

    fn article(self) -> &'static str {
        match self {
            ParamType::Int => "an",
            _ => "a",
        }
    }
}

/// A declared param.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Param {
    pub default: Option<Value>,
    pub description: Option<String>,
    /// The declared type, else the default's; `None` takes any value.
    #[serde(rename = "type")]
    pub kind: Option<ParamType>,
    /// The values it may take (for a list, each item); empty for any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Value>,
}

/// Why a value does not fit its param: the message, and a help line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    pub message: String,
    pub help: Option<String>,
    /// For a list, the index of the item at fault.
    pub item: Option<usize>,
}

impl Param {
    /// Checks `value` against the param's type and choices; returns the value as
    /// elements read it (a list given as a string becomes the list). `name` is
    /// `param `then` of element `init`` in messages.
    pub fn check(&self, value: &Value, name: &str) -> Result<Value, Misfit> {
        let value = match (self.kind, value) {
            (Some(ParamType::List), Value::String(s)) => Value::Array(
                s.split([' ', ',']).filter(|w| !w.is_empty()).map(|w| Value::String(w.into())).collect(),
            ),
            _ => value.clone(),
        };
        if let Some(kind) = self.kind {
            let fits = match kind {
                ParamType::String => value.is_string(),
                ParamType::Path => value.as_str().is_some_and(|s| !s.is_empty()),
                ParamType::Int => value.is_i64() || value.is_u64(),
                ParamType::Bool => value.is_boolean(),
                ParamType::List => value.is_array(),
                ParamType::Table => value.is_object(),
            };
            if !fits {
                let what = if kind == ParamType::Path && value.is_string() {
                    "an empty path".to_string()
                } else {
                    format!("`{}`, {}", shown(&value), describe(&value))
                };
                return Err(Misfit {
                    message: format!("{name} takes {} {}, not {what}", kind.article(), kind.name()),
                    help: self.choices_help(),
                    item: None,
                });
            }
        }
        if !self.choices.is_empty() {
            let items = match &value {
                Value::Array(items) => items.as_slice(),
                one => std::slice::from_ref(one),
            };
            if let Some((i, bad)) = items.iter().enumerate().find(|(_, v)| !self.choices.contains(v)) {
                return Err(Misfit {
                    message: format!("`{}` is not a choice of {name}", shown(bad)),
                    help: self.choices_help(),
                    item: value.is_array().then_some(i),
                });
            }
        }
        Ok(value)
    }

    fn choices_help(&self) -> Option<String> {
        if self.choices.is_empty() {
            return None;
        }
        let list: Vec<String> = self.choices.iter().map(shown).collect();
        let each = if self.kind == Some(ParamType::List) { "each item one of" } else { "one of" };
        Some(format!("{each} {}", list.join(", ")))
    }
}

/// A value as a user wrote it: strings bare, anything else as TOML would show it.
pub fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What kind of value it is, with its article.
fn describe(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an int",
        Value::Bool(_) => "a bool",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
        Value::Null => "nothing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn param(kind: ParamType, choices: Value) -> Param {
        let choices = choices.as_array().cloned().unwrap_or_default();
        Param { default: None, description: None, kind: Some(kind), choices }
    }

    #[test]
    fn choices_are_listed() {
        let then = param(ParamType::String, json!(["shell", "poweroff", "reboot"]));
        let e = then.check(&json!("sideways"), "param `then` of element `init`").unwrap_err();
        assert_eq!(e.message, "`sideways` is not a choice of param `then` of element `init`");
        assert_eq!(e.help.as_deref(), Some("one of shell, poweroff, reboot"));
        let e = then.check(&json!(5), "param `then`").unwrap_err();
        assert_eq!(e.message, "param `then` takes a string, not `5`, an int");
        assert_eq!(then.check(&json!("reboot"), "p"), Ok(json!("reboot")));
    }

    #[test]
    fn lists_take_words_and_check_each_item() {
        let r = param(ParamType::List, json!(["networkd", "netplan"]));
        assert_eq!(r.check(&json!("networkd,netplan"), "p"), Ok(json!(["networkd", "netplan"])));
        let e = r.check(&json!(["networkd", "wicked"]), "p").unwrap_err();
        assert_eq!(e.message, "`wicked` is not a choice of p");
        assert_eq!(e.help.as_deref(), Some("each item one of networkd, netplan"));
    }

    #[test]
    fn types() {
        let int = param(ParamType::Int, Value::Null);
        assert!(int.check(&json!(3), "p").is_ok());
        assert_eq!(int.check(&json!(1.5), "p").unwrap_err().message, "p takes an int, not `1.5`, a float");
        let path = param(ParamType::Path, Value::Null);
        assert_eq!(path.check(&json!(""), "p").unwrap_err().message, "p takes a path, not an empty path");
        let table = param(ParamType::Table, Value::Null);
        assert!(table.check(&json!({"a": 1}), "p").is_ok());
        assert!(param(ParamType::Bool, Value::Null).check(&json!("yes"), "p").is_err());
        let any = Param { default: None, description: None, kind: None, choices: vec![] };
        assert!(any.check(&json!({"x": [1]}), "p").is_ok());
    }
}
