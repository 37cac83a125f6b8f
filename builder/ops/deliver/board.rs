//! Every node's progress through delivery, shared by the node workers and the server:
//! each step as it ends is a line on stderr; at the end a table (one row per node, a
//! column per step) and `deliver.json`.

use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The steps of one node's delivery, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Bmc,
    Media,
    Boot,
    Power,
    Fetched,
    CheckedIn,
    Cleanup,
}

impl Step {
    pub const ALL: [Step; 7] =
        [Step::Bmc, Step::Media, Step::Boot, Step::Power, Step::Fetched, Step::CheckedIn, Step::Cleanup];

    fn title(self) -> &'static str {
        match self {
            Step::Bmc => "BMC",
            Step::Media => "MEDIA",
            Step::Boot => "BOOT",
            Step::Power => "POWER",
            Step::Fetched => "FETCHED",
            Step::CheckedIn => "CHECKED IN",
            Step::Cleanup => "CLEANUP",
        }
    }

    /// What the step is, for a failure's message.
    pub fn doing(self) -> &'static str {
        match self {
            Step::Bmc => "reaching the BMC",
            Step::Media => "inserting the media",
            Step::Boot => "setting the one-time boot",
            Step::Power => "powering on",
            Step::Fetched => "fetching the image",
            Step::CheckedIn => "checking in",
            Step::Cleanup => "ejecting the media and clearing the boot override",
        }
    }
}

/// Where one step of one node stands.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "kebab-case")]
pub enum Cell {
    Pending,
    Done(String),
    Failed(String),
    /// Not part of this delivery (no media for a network boot, no check-in URL).
    Skipped(String),
}

/// One node's row.
#[derive(Debug, Clone)]
pub struct Row {
    pub node: String,
    pub bmc: String,
    /// The URL the BMC was given, if any.
    pub image: Option<String>,
    pub steps: Vec<(Step, Cell)>,
    /// What the node said when it checked in.
    pub summary: Option<String>,
    pub macs: Vec<String>,
}

impl Row {
    /// The row as deliver.json has it: each step by name.
    pub fn json(&self) -> serde_json::Value {
        let steps: serde_json::Map<String, serde_json::Value> = self
            .steps
            .iter()
            .map(|(s, c)| {
                (
                    serde_json::to_value(s).unwrap_or_default().as_str().unwrap_or_default().to_string(),
                    serde_json::to_value(c).unwrap_or_default(),
                )
            })
            .collect();
        serde_json::json!({
            "node": self.node,
            "bmc": self.bmc,
            "image": self.image,
            "result": if self.failure().is_some() { "failed" } else if self.arrived() { "delivered" } else { "pending" },
            "failure": self.failure().map(|(s, m)| serde_json::json!({"step": s, "message": m})),
            "warning": self.warning(),
            "steps": steps,
            "summary": self.summary,
            "macs": self.macs,
        })
    }

    pub fn cell(&self, step: Step) -> &Cell {
        &self.steps.iter().find(|(s, _)| *s == step).expect("every step has a cell").1
    }

    fn set(&mut self, step: Step, cell: Cell) {
        if let Some(slot) = self.steps.iter_mut().find(|(s, _)| *s == step) {
            slot.1 = cell;
        }
    }

    /// The first failure, as (step, message): the node was not delivered. (A cleanup
    /// that fails leaves a delivered node delivered: see [`Row::warning`].)
    pub fn failure(&self) -> Option<(Step, &str)> {
        self.steps.iter().find_map(|(s, c)| match c {
            Cell::Failed(m) if *s != Step::Cleanup => Some((*s, m.as_str())),
            _ => None,
        })
    }

    /// What went wrong after the node arrived: the media or boot override left behind.
    pub fn warning(&self) -> Option<&str> {
        match self.cell(Step::Cleanup) {
            Cell::Failed(m) => Some(m),
            _ => None,
        }
    }

    /// Whether the node is where delivery leaves it: checked in (or, with nothing to
    /// check in to, its image fetched).
    pub fn arrived(&self) -> bool {
        matches!(self.cell(Step::CheckedIn), Cell::Done(_))
            || (matches!(self.cell(Step::CheckedIn), Cell::Skipped(_))
                && !matches!(self.cell(Step::Fetched), Cell::Pending))
    }
}

/// The rows, and a signal for whoever waits on a node.
pub struct Board {
    rows: Mutex<Vec<Row>>,
    changed: Condvar,
}

impl Board {
    pub fn new(rows: Vec<Row>) -> Board {
        Board { rows: Mutex::new(rows), changed: Condvar::new() }
    }

    pub fn row(node: &str, bmc: &str, image: Option<String>) -> Row {
        let steps = Step::ALL.iter().map(|s| (*s, Cell::Pending)).collect();
        Row { node: node.to_string(), bmc: bmc.to_string(), image, steps, summary: None, macs: Vec::new() }
    }

    /// Sets a step's cell and says so on stderr.
    pub fn mark(&self, node: &str, step: Step, cell: Cell) {
        let line = match &cell {
            Cell::Done(d) => format!("{}: {d}", step.title().to_lowercase()),
            Cell::Failed(m) if step == Step::Cleanup => {
                format!("warning: {} did not work: {m}", step.doing())
            }
            Cell::Failed(m) => format!("FAILED {}: {m}", step.doing()),
            Cell::Skipped(why) => format!("{}: {why}", step.title().to_lowercase()),
            Cell::Pending => return,
        };
        eprintln!("smelt deliver: {node}: {line}");
        self.update(node, |row| row.set(step, cell));
    }

    /// Changes a node's row, unless it has failed already; wakes the waiters.
    pub fn update(&self, node: &str, change: impl FnOnce(&mut Row)) {
        let mut rows = self.rows.lock().expect("a delivery thread panicked");
        if let Some(row) = rows.iter_mut().find(|r| r.node == node) {
            change(row);
        }
        self.changed.notify_all();
    }

    pub fn get(&self, node: &str) -> Option<Row> {
        self.rows.lock().expect("a delivery thread panicked").iter().find(|r| r.node == node).cloned()
    }

    pub fn rows(&self) -> Vec<Row> {
        self.rows.lock().expect("a delivery thread panicked").clone()
    }

    /// Waits until `node` has arrived or failed, or `deadline` passes; its row then.
    pub fn wait(&self, node: &str, deadline: Instant) -> Row {
        let mut rows = self.rows.lock().expect("a delivery thread panicked");
        loop {
            let row = rows.iter().find(|r| r.node == node).expect("a node on the board").clone();
            let now = Instant::now();
            if row.arrived() || row.failure().is_some() || now >= deadline {
                return row;
            }
            let wait = (deadline - now).min(Duration::from_secs(5));
            rows = self.changed.wait_timeout(rows, wait).expect("a delivery thread panicked").0;
        }
    }
}

/// The closing table: one row per node, a column per step, and each failure spelled out.
pub fn table(rows: &[Row]) -> String {
    let short = |c: &Cell| match c {
        Cell::Pending => "-".to_string(),
        Cell::Done(_) => "yes".to_string(),
        Cell::Failed(_) => "FAILED".to_string(),
        Cell::Skipped(_) => "n/a".to_string(),
    };
    let mut grid = vec![std::iter::once("NODE".to_string())
        .chain(Step::ALL.iter().map(|s| s.title().to_string()))
        .collect::<Vec<_>>()];
    for row in rows {
        grid.push(
            std::iter::once(row.node.clone()).chain(Step::ALL.iter().map(|s| short(row.cell(*s)))).collect(),
        );
    }
    let widths: Vec<usize> =
        (0..grid[0].len()).map(|i| grid.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for line in &grid {
        let cells: Vec<String> = line.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for row in rows {
        if let Some((step, message)) = row.failure() {
            out.push_str(&format!("{}: FAILED {}: {message}\n", row.node, step.doing()));
        } else if let Some(summary) = &row.summary {
            out.push_str(&format!("{}: {summary}\n", row.node));
        }
        if let Some(warning) = row.warning() {
            out.push_str(&format!(
                "{}: warning: {} did not work, undo it by hand: {warning}\n",
                row.node,
                Step::Cleanup.doing()
            ));
        }
    }
    let failed = rows.iter().filter(|r| r.failure().is_some()).count();
    out.push_str(&match failed {
        0 => format!("{} node(s) delivered\n", rows.len()),
        n => format!("{n} of {} node(s) FAILED\n", rows.len()),
    });
    out
}

/// `deliver.json` in `outdir`, written under a temporary name and renamed into place.
pub fn write_report(outdir: &Path, report: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write as _;
    let pending = crate::io::atomic::Pending::new(&outdir.join("deliver.json"));
    let mut file = pending.create_file()?;
    file.write_all(serde_json::to_string_pretty(report)?.as_bytes())?;
    file.write_all(b"\n")?;
    drop(file);
    pending.publish()
}
