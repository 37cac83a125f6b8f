//! Tests that the reference in `docs/` documents every key the input files take: the
//! keys come from the serde types themselves (the field list serde hands a
//! deserializer), so a key added to the code and not to the reference fails a test.

use serde::de::{self, Deserialize, Visitor};

/// A page of the reference: its path in the repository and its text.
#[derive(Clone, Copy)]
pub struct Doc {
    pub path: &'static str,
    pub text: &'static str,
}

macro_rules! doc {
    ($path:literal) => {
        Doc { path: $path, text: include_str!(concat!("../../", $path)) }
    };
}

pub const IMAGE: Doc = doc!("docs/image-toml.md");
pub const CLIENT: Doc = doc!("docs/client-toml.md");
pub const ELEMENTS: Doc = doc!("docs/elements.md");
pub const BUDGET: Doc = doc!("docs/size-budget.md");

/// The keys of `T`'s fields, as they are spelled in the file (after renames).
pub fn keys<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut recorder = Recorder(None);
    let _ = T::deserialize(&mut recorder);
    recorder.0.expect("a struct with named fields")
}

/// The page from `heading` up to the next heading of the same level.
pub fn section(doc: Doc, heading: &str) -> &'static str {
    let text = doc.text;
    let start = text.find(heading).unwrap_or_else(|| panic!("{} has no `{heading}`", doc.path));
    let level = heading.chars().take_while(|&c| c == '#').count();
    let next = text[start + heading.len()..]
        .match_indices('\n')
        .map(|(i, _)| start + heading.len() + i + 1)
        .find(|&i| {
            let line = &text[i..];
            line.starts_with('#') && line.chars().take_while(|&c| c == '#').count() <= level
        })
        .unwrap_or(text.len());
    &text[start..next]
}

/// Asserts the page's section under `heading` documents every key in `keys`.
pub fn assert_documented(doc: Doc, heading: &str, keys: &[&[&str]]) {
    let text = section(doc, heading);
    for key in keys.concat() {
        assert!(documents(text, key), "`{key}` is not in {}'s {heading} section", doc.path);
    }
}

/// Whether `text` documents `key`: as `` `key` ``, as a TOML key (`key =`, aligned or
/// not), or as a table (`[key`).
pub fn documents(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + key.len()..].trim_start_matches(' ');
        let whole_word = !before.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_');
        whole_word
            && (after.starts_with('=')
                || before == Some('[')
                || (before == Some('`') && after.starts_with('`')))
    })
}

/// A deserializer that only notes the field names it is asked for.
struct Recorder(Option<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for &mut Recorder {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0 = Some(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::documents;

    #[test]
    fn a_key_is_documented_as_a_whole_word() {
        assert!(documents("depends   = [\"init\"]", "depends"));
        assert!(documents("may carry `mtu`", "mtu"));
        assert!(documents("[[permissions]]", "permissions"));
        assert!(!documents("xdepends = 1", "depends"));
        assert!(!documents("the mtu is", "mtu"));
        assert!(!documents("`mtu-max`", "mtu"));
    }
}
