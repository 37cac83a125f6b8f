//! The filters, tests and lookups a Jinja template names: `x | name(…)`, `x is name`,
//! `x is not name`, and `lookup('name', …)`, `query(…)`, `q(…)`, read inside `{{ }}` and
//! `{% %}` (string literals skipped, so a `|` in a quoted string is not a filter).

use std::collections::BTreeSet;

/// What one template names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub filters: BTreeSet<String>,
    pub tests: BTreeSet<String>,
    pub lookups: BTreeSet<String>,
}

/// The names `template` uses.
pub fn names(template: &str) -> Names {
    let mut out = Names::default();
    let mut rest = template;
    while let Some(start) = rest.find(['{']) {
        let after = &rest[start + 1..];
        let close = match after.chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let body = &after[1..];
        let end = body.find(close).unwrap_or(body.len());
        expression(&body[..end], &mut out);
        rest = &body[end..];
    }
    out
}

/// One expression's names, with its string literals blanked out.
fn expression(text: &str, out: &mut Names) {
    let (code, literals) = split_literals(text);
    let tokens = tokens(&code);
    for (i, t) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1).map(String::as_str);
        match t.as_str() {
            "|" => {
                if let Some(name) = next.filter(|n| is_name(n)) {
                    out.filters.insert(name.to_string());
                }
            }
            "is" => {
                let name = if next == Some("not") { tokens.get(i + 2).map(String::as_str) } else { next };
                if let Some(name) = name.filter(|n| is_name(n)) {
                    out.tests.insert(name.to_string());
                }
            }
            "lookup" | "query" | "q" if next == Some("(") => {
                // The first argument: a string literal, blanked to `\u{0}N` in the code.
                if let Some(index) = tokens.get(i + 2).and_then(|a| a.strip_prefix('\u{0}')) {
                    if let Some(name) = index.parse::<usize>().ok().and_then(|n| literals.get(n)) {
                        if is_name(name) {
                            out.lookups.insert(name.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// A plugin name: letters, digits, `_` and `.`, not starting with a digit.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// The text with each string literal replaced by `\u{0}N`, and the literals.
fn split_literals(text: &str) -> (String, Vec<String>) {
    let mut code = String::new();
    let mut literals = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\'' || c == '"' {
            let mut lit = String::new();
            let mut escaped = false;
            for d in chars.by_ref() {
                if escaped {
                    lit.push(d);
                    escaped = false;
                } else if d == '\\' {
                    escaped = true;
                } else if d == c {
                    break;
                } else {
                    lit.push(d);
                }
            }
            code.push_str(&format!(" \u{0}{} ", literals.len()));
            literals.push(lit);
        } else {
            code.push(c);
        }
    }
    (code, literals)
}

/// Names (with dots), single punctuation marks, and blanked literals.
fn tokens(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in code.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '\u{0}' {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn filters_tests_and_lookups() {
        let n = names(
            "{{ a | default('x|y') | community.general.json_query('[*]') }} {% if b is not defined and c is \
             ansible.builtin.truthy %}{{ lookup('env', 'HOME') ~ query(\"ns.coll.thing\") }}{% endif %} {{ x || }}",
        );
        assert_eq!(n.filters, set(&["community.general.json_query", "default"]));
        assert_eq!(n.tests, set(&["ansible.builtin.truthy", "defined"]));
        assert_eq!(n.lookups, set(&["env", "ns.coll.thing"]));
        assert_eq!(names("no template | here").filters, set(&[]));
    }
}
