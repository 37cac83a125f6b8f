//! Enums that input files spell by name (`outputs = ["iso"]`, `type = "list"`): one
//! table of names per enum, read both ways, and listed in errors.

pub trait Named: Copy + PartialEq + 'static {
    /// Every value with its name, in the order errors list them.
    const NAMES: &'static [(&'static str, Self)];

    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, v)| *v == self).map(|(n, _)| *n).expect("every value is named")
    }

    /// `a, b, c`, for "outputs are …".
    fn listed() -> String {
        Self::NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    }
}
