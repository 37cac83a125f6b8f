//! Sizes and budgets: what the tree weighs (apparent and allocated bytes, per element,
//! per path) and every limit of the budget checked against it.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::budget::{Budget, Limit, Subject};
use crate::config::image::OutputKind;
use crate::path::ImagePath;
use crate::tree::{Kind, Tree};

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Totals {
    pub apparent_bytes: u64,
    pub allocated_bytes: u64,
    pub files: u64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Measure {
    pub apparent_bytes: u64,
    pub allocated_bytes: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub devices: u64,
    pub hardlinks: u64,
    /// Per element, in element order of first appearance.
    pub elements: BTreeMap<String, Totals>,
}

/// Sums the tree. Hard links count once, as they take memory once when unpacked.
pub fn measure(tree: &Tree) -> Measure {
    let mut m = Measure::default();
    let mut seen_links = BTreeSet::new();
    for (_, e) in tree.iter() {
        if !m.elements.contains_key(&*e.element) {
            m.elements.insert(e.element.to_string(), Default::default());
        }
        let t = m.elements.get_mut(&*e.element).expect("inserted above");
        match &e.kind {
            Kind::Dir => m.dirs += 1,
            Kind::Symlink(_) => m.symlinks += 1,
            Kind::File { link, .. } => {
                m.files += 1;
                t.files += 1;
                if let Some(key) = link {
                    if !seen_links.insert(*key) {
                        m.hardlinks += 1;
                        continue;
                    }
                }
            }
            _ => m.devices += 1,
        }
        m.apparent_bytes += e.size();
        m.allocated_bytes += e.alloc();
        t.apparent_bytes += e.size();
        t.allocated_bytes += e.alloc();
    }
    m
}

/// The `n` largest files, biggest first: (path, bytes, element).
pub fn largest(tree: &Tree, n: usize) -> Vec<(String, u64, String)> {
    use std::cmp::Reverse;
    // The n largest so far, smallest on top: one pass, n entries held.
    let mut top = std::collections::BinaryHeap::new();
    for (p, e) in tree.iter().filter(|(_, e)| matches!(e.kind, Kind::File { .. })) {
        top.push(Reverse((e.size(), Reverse(p), e.element.clone())));
        if top.len() > n {
            top.pop();
        }
    }
    let mut files: Vec<_> = top
        .into_iter()
        .map(|Reverse((size, Reverse(p), el))| (p.to_string(), size, el.to_string()))
        .collect();
    files.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    files
}

/// One limit checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub subject: Subject,
    pub limit: u64,
    pub actual: u64,
    pub ok: bool,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::config::size::human;
        write!(f, "{}: {} of {} allowed", self.subject, human(self.actual), human(self.limit))?;
        if !self.ok {
            write!(f, " (over by {})", human(self.actual - self.limit))?;
        }
        Ok(())
    }
}

/// The build went over budget: a result, not a crash. Exit status 3.
#[derive(Debug, thiserror::Error)]
#[error("over budget ({} limit{} exceeded):\n{}\nnothing was published; cut what the table above shows, or raise the limits in {budget_file}",
    .violations.len(), if .violations.len() == 1 { "" } else { "s" },
    .violations.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"))]
pub struct OverBudget {
    pub violations: Vec<Check>,
    pub budget_file: String,
}

/// Checks the limits that depend only on the tree: unpacked sizes of the outputs being
/// built, elements and paths. Output file sizes are checked once written.
pub fn check_tree(budget: &Budget, tree: &Tree, m: &Measure, outputs: &[OutputKind]) -> Vec<Check> {
    budget
        .limits
        .iter()
        .filter_map(|Limit { subject, max }| {
            let actual = match subject {
                Subject::Unpacked(kind) if outputs.contains(kind) => m.apparent_bytes,
                Subject::Element(name) => m.elements.get(name).map_or(0, |t| t.apparent_bytes),
                Subject::Path(prefix) => path_bytes(tree, prefix),
                _ => return None,
            };
            Some(Check { subject: subject.clone(), limit: *max, actual, ok: actual <= *max })
        })
        .collect()
}

pub fn check_output(budget: &Budget, kind: OutputKind, bytes: u64) -> Option<Check> {
    budget.limits.iter().find(|l| l.subject == Subject::Output(kind)).map(|l| Check {
        subject: l.subject.clone(),
        limit: l.max,
        actual: bytes,
        ok: bytes <= l.max,
    })
}

fn path_bytes(tree: &Tree, prefix: &str) -> u64 {
    let prefix = ImagePath::new(prefix).unwrap_or_else(|_| ImagePath::root());
    tree.iter().filter(|(p, _)| p.starts_with(&prefix)).map(|(_, e)| e.size()).sum()
}
