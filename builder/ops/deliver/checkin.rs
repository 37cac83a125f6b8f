//! The delivering smelt's side of the server: a node's check-in (the POST the network
//! element's `check-in` script makes once the node's network is applied), checked
//! against the inventory, and which node each file sent was for.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::board::{Board, Cell, Step};
use crate::config::size::human;
use crate::server::{Transfer, Watcher};

/// What deliver knows of each node while serving: the file its BMC fetches, the BMC's
/// host, and the MACs the inventory gives it.
pub struct Expected {
    pub file: Option<String>,
    pub bmc_host: Option<String>,
    pub macs: Vec<String>,
}

/// Hears transfers and check-ins for the board.
pub struct Desk {
    pub board: Arc<Board>,
    pub nodes: BTreeMap<String, Expected>,
    /// Whether fetches are seen (false when `--base-url` points at another server).
    pub serving: bool,
}

/// A check-in as the node sent it.
#[derive(Debug, PartialEq, Eq)]
pub struct CheckIn {
    pub node: String,
    pub summary: String,
    pub macs: Vec<String>,
    pub failed: bool,
}

impl CheckIn {
    /// `key=value` lines: node, summary, macs (space-separated), failed (0 or not).
    pub fn parse(body: &str) -> Option<CheckIn> {
        let mut fields = BTreeMap::new();
        for line in body.lines() {
            if let Some((k, v)) = line.split_once('=') {
                fields.insert(k.trim(), v.trim());
            }
        }
        Some(CheckIn {
            node: fields.get("node").filter(|n| !n.is_empty())?.to_string(),
            summary: fields.get("summary").unwrap_or(&"").to_string(),
            macs: fields.get("macs").unwrap_or(&"").split_whitespace().map(str::to_ascii_lowercase).collect(),
            failed: fields.get("failed").is_some_and(|f| *f != "0"),
        })
    }
}

/// The node's verdict on a check-in: what the table says, or why it is not success.
pub fn judge(check_in: &CheckIn, expected: &Expected) -> Result<String, String> {
    let missing: Vec<&str> = expected
        .macs
        .iter()
        .map(String::as_str)
        .filter(|m| !check_in.macs.iter().any(|c| c.eq_ignore_ascii_case(m)))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "it checked in, but its MACs do not match the inventory: it has {}, client.toml gives it {} \
             (is the BMC's node the one client.toml names? fix the node's links or its bmc)",
            if check_in.macs.is_empty() { "none".to_string() } else { check_in.macs.join(" ") },
            expected.macs.join(" ")
        ));
    }
    if check_in.failed {
        return Err(format!(
            "it checked in with steps of its network set-up FAILED (see its console): {}",
            check_in.summary
        ));
    }
    Ok(check_in.summary.clone())
}

impl Watcher for Desk {
    fn node_of(&self, path: &str) -> Option<String> {
        let mut owners = self.nodes.iter().filter(|(_, e)| e.file.as_deref() == Some(path));
        match (owners.next(), owners.next()) {
            (Some((node, _)), None) => Some(node.clone()),
            _ => None,
        }
    }

    fn sent(&self, transfer: &Transfer) {
        if !matches!(transfer.status, 200 | 206) || !self.serving {
            return;
        }
        // The node the server named; else every node given this file whose BMC asked
        // (a shared ISO fetched by several BMCs at one address counts for each).
        let nodes: Vec<&String> = match transfer.node {
            Some(node) => self.nodes.keys().filter(|n| n.as_str() == node).collect(),
            None => self
                .nodes
                .iter()
                .filter(|(_, e)| {
                    e.file.as_deref() == Some(transfer.path) && e.bmc_host.as_deref() == Some(transfer.peer)
                })
                .map(|(n, _)| n)
                .collect(),
        };
        for node in nodes {
            if matches!(self.board.get(node).map(|r| r.cell(Step::Fetched).clone()), Some(Cell::Pending)) {
                self.board.mark(
                    node,
                    Step::Fetched,
                    Cell::Done(format!(
                        "{} fetched /{} ({})",
                        transfer.peer,
                        transfer.path,
                        human(transfer.bytes)
                    )),
                );
            }
        }
    }

    fn posted(&self, peer: &str, path: &str, body: &str) -> Option<(&'static str, String)> {
        if path != "check-in" {
            return None;
        }
        let Some(check_in) = CheckIn::parse(body) else {
            eprintln!("smelt deliver: {peer}: a check-in without a node name, ignored");
            return Some(("400 Bad Request", "a check-in names its node: node=NAME\n".to_string()));
        };
        let Some(expected) = self.nodes.get(&check_in.node) else {
            eprintln!("smelt deliver: {peer}: node {} checked in, but is not being delivered", check_in.node);
            return Some(("404 Not Found", format!("node {} is not being delivered\n", check_in.node)));
        };
        let node = check_in.node.clone();
        let verdict = judge(&check_in, expected);
        self.board.update(&node, |row| {
            row.summary = Some(check_in.summary.clone());
            row.macs = check_in.macs.clone();
        });
        // A node that checks in has fetched what it boots, whoever served it.
        if matches!(self.board.get(&node).map(|r| r.cell(Step::Fetched).clone()), Some(Cell::Pending)) {
            self.board.mark(&node, Step::Fetched, Cell::Done("it booted".to_string()));
        }
        match verdict {
            Ok(summary) => {
                self.board.mark(&node, Step::CheckedIn, Cell::Done(format!("from {peer}: {summary}")))
            }
            Err(why) => self.board.mark(&node, Step::CheckedIn, Cell::Failed(why)),
        }
        Some(("200 OK", "thanks\n".to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(macs: &[&str]) -> Expected {
        Expected { file: None, bmc_host: None, macs: macs.iter().map(|m| m.to_string()).collect() }
    }

    #[test]
    fn a_check_in_is_read_and_judged() {
        let body = "node=acme-n1\nsummary=node acme-n1: eth0 10.0.2.21/24;\nmacs=52:54:00:AA:00:01 52:54:00:aa:00:09\nfailed=0\n";
        let c = CheckIn::parse(body).unwrap();
        assert_eq!(c.node, "acme-n1");
        assert_eq!(c.macs, ["52:54:00:aa:00:01", "52:54:00:aa:00:09"]);
        assert!(!c.failed);
        assert_eq!(judge(&c, &expected(&["52:54:00:aa:00:01"])).unwrap(), "node acme-n1: eth0 10.0.2.21/24;");
        let wrong = judge(&c, &expected(&["52:54:00:aa:00:02"])).unwrap_err();
        assert!(
            wrong.contains("do not match the inventory") && wrong.contains("52:54:00:aa:00:02"),
            "{wrong}"
        );
        let failed = CheckIn::parse("node=n\nfailed=1\nmacs=\n").unwrap();
        assert!(judge(&failed, &expected(&[])).unwrap_err().contains("FAILED"));
        assert_eq!(CheckIn::parse("summary=x\n"), None);
    }
}
