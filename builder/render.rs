//! Tera templates, set up one way for everything smelt renders — element `templates/`,
//! the network renderers, boot loader configs, config drives, agent configs: no HTML
//! escaping, every cause of an error kept on one line, and file names whose
//! placeholder (`{node}`, `{iface}`, …) renders them once per item.

use serde::Serialize;

/// Why a template did not render: tera's message with its causes, on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(String);

/// A template of a set that does not parse: its name and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{template}: {error}")]
pub struct BadTemplate {
    pub template: String,
    pub error: RenderError,
}

/// A set of named templates that may include one another.
pub struct Templates {
    tera: tera::Tera,
}

impl Templates {
    /// Adds every template at once, so one may include another added after it. A
    /// failure names the template at fault: the first that does not parse on its own.
    pub fn new<'a>(named: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Templates, BadTemplate> {
        let named: Vec<(&str, &str)> = named.into_iter().collect();
        let mut tera = tera::Tera::default();
        tera.autoescape_on(Vec::<&str>::new());
        if let Err(e) = tera.add_raw_templates(named.iter().copied()) {
            let culprit = named.iter().find_map(|(name, text)| {
                let alone = tera::Tera::default().add_raw_template(name, text).err()?;
                Some(BadTemplate { template: name.to_string(), error: flat(&alone) })
            });
            let first = named.first().map_or_else(String::new, |(n, _)| n.to_string());
            return Err(culprit.unwrap_or(BadTemplate { template: first, error: flat(&e) }));
        }
        Ok(Templates { tera })
    }

    pub fn render(&self, name: &str, context: &impl Serialize) -> Result<String, RenderError> {
        let context = tera::Context::from_serialize(context).map_err(|e| flat(&e))?;
        self.tera.render(name, &context).map_err(|e| flat(&e))
    }
}

/// Renders one template's text on its own.
pub fn render_str(text: &str, context: &impl Serialize) -> Result<String, RenderError> {
    Templates::new([("template", text)]).map_err(|e| e.error)?.render("template", context)
}

/// The names a template's file name renders to: once per item when it holds
/// `placeholder` (replaced by that item's name), else once, as it is.
pub fn per_item<'a, T>(
    file_name: &str,
    placeholder: &str,
    items: impl IntoIterator<Item = (&'a str, T)>,
) -> Vec<(String, Option<T>)> {
    if !file_name.contains(placeholder) {
        return vec![(file_name.to_string(), None)];
    }
    items.into_iter().map(|(name, item)| (file_name.replace(placeholder, name), Some(item))).collect()
}

/// An error with its causes, on one line: tera puts the useful part (which variable,
/// which filter) in the causes.
fn flat(e: &dyn std::error::Error) -> RenderError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    RenderError(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn includes_escaping_and_causes() {
        let t = Templates::new([("a", "{% include \"_b\" %} & <{{ x }}>"), ("_b", "b")]).unwrap();
        assert_eq!(t.render("a", &json!({ "x": "&" })).unwrap(), "b & <&>");
        let e = render_str("{{ nope }}", &json!({})).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn placeholders_expand_per_item() {
        let items = [("n1", 1), ("n2", 2)];
        assert_eq!(
            per_item("etc/{node}/x", "{node}", items),
            [("etc/n1/x".to_string(), Some(1)), ("etc/n2/x".to_string(), Some(2))]
        );
        assert_eq!(per_item("etc/x", "{node}", items), [("etc/x".to_string(), None)]);
    }
}
