//! `smelt deliver OUTDIR --client client.toml`: from a build's outputs to nodes that are
//! up and configured, through their BMCs — for every node at once (at most
//! [`PARALLEL`] talking to BMCs), each on its own: reach the BMC ([`crate::redfish`]),
//! insert the node's image by URL ([`media`]), set a one-time boot, power on; then wait
//! while smelt's file server ([`crate::server`]) sees the BMC fetch the image and the
//! node check in ([`checkin`]); then eject and clear the override. A failure stops its
//! node only; [`board`] shows every node's steps and writes `deliver.json`.

mod board;
mod checkin;
mod media;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::config::client::{Client, Node};
use crate::redfish::{self, Session};
use crate::server::Server;
use board::{Board, Cell, Row, Step};
use checkin::{Desk, Expected};
pub use media::Media;
use media::Outputs;

/// At most this many nodes' BMCs are talked to at once.
pub const PARALLEL: usize = 8;

pub struct DeliverOptions {
    pub outdir: PathBuf,
    pub client: PathBuf,
    /// Only these nodes (all of the client's when empty).
    pub nodes: Vec<String>,
    pub media: Media,
    /// Where smelt serves the outputs to the BMCs and hears check-ins.
    pub serve: SocketAddr,
    /// Where BMCs fetch the outputs instead, when another web server has them.
    pub base_url: Option<String>,
    /// How long to wait, from the start, for every node to check in.
    pub wait: Duration,
    pub keep_media: bool,
    pub dry_run: bool,
}

/// One node to deliver: its inventory entry, its BMC, its file and that file's URL.
struct Job {
    node: Node,
    bmc: crate::config::client::Bmc,
    file: Option<String>,
    base: String,
}

/// Delivers, prints the table on stdout, writes deliver.json; an error when any node failed.
pub fn deliver(opts: &DeliverOptions) -> anyhow::Result<String> {
    let client = crate::config::client::load(&opts.client)?;
    let outputs = Outputs::read(&opts.outdir, opts.media)?;
    let jobs = jobs(&client, &outputs, opts)?;
    if opts.dry_run {
        return Ok(dry_run(&jobs, &outputs));
    }
    let check_in = check_in_url(&client, opts);
    let rows = jobs
        .iter()
        .map(|j| Board::row(&j.node.name, &j.bmc.url, j.file.as_ref().map(|f| media::url(&j.base, f))))
        .collect();
    let board = Arc::new(Board::new(rows));
    let desk = Desk {
        board: Arc::clone(&board),
        nodes: jobs
            .iter()
            .map(|j| {
                let expected = Expected {
                    file: j.file.clone(),
                    bmc_host: media::host_of(&j.bmc.url),
                    macs: j.node.macs().map(str::to_ascii_lowercase).collect(),
                };
                (j.node.name.clone(), expected)
            })
            .collect::<BTreeMap<_, _>>(),
        serving: opts.base_url.is_none(),
    };
    let server = Arc::new(Server::new(&outputs.root, "smelt deliver", Some(Arc::new(desk)))?);
    let listener = TcpListener::bind(opts.serve).with_context(|| {
        format!("listening on {}: is another server there? choose another with --serve", opts.serve)
    })?;
    eprintln!(
        "smelt deliver: serving {} on http://{}/ for {} node(s); {}",
        outputs.root.display(),
        listener.local_addr().unwrap_or(opts.serve),
        jobs.len(),
        match &check_in {
            Some(url) => format!("nodes check in at {url}"),
            None => "the image carries no check-in URL (client.toml [deliver] check-in), so a node is done once its image is fetched".to_string(),
        }
    );
    {
        let server = Arc::clone(&server);
        std::thread::spawn(move || server.run(listener));
    }
    let deadline = Instant::now() + opts.wait;
    let gate = Gate::new(PARALLEL);
    std::thread::scope(|scope| {
        for job in &jobs {
            let (board, gate, outputs) = (&board, &gate, &outputs);
            let asks_check_in = check_in.is_some();
            scope.spawn(move || deliver_node(job, outputs, board, gate, deadline, asks_check_in, opts));
        }
    });
    let rows = board.rows();
    let report = serde_json::json!({
        "client": client.name,
        "media": opts.media,
        "served-from": opts.base_url.clone().unwrap_or_else(|| jobs.first().map(|j| j.base.clone()).unwrap_or_default()),
        "check-in": check_in,
        "nodes": rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    board::write_report(&opts.outdir, &report)?;
    let table = board::table(&rows);
    let failed: Vec<&str> = rows.iter().filter(|r| r.failure().is_some()).map(|r| r.node.as_str()).collect();
    if failed.is_empty() {
        return Ok(table);
    }
    print!("{table}");
    anyhow::bail!(
        "{} of {} node(s) not delivered: {} (see the table above and {})",
        failed.len(),
        rows.len(),
        failed.join(", "),
        opts.outdir.join("deliver.json").display()
    )
}

/// The nodes asked for, each with its BMC and file; every problem at once.
fn jobs(client: &Client, outputs: &Outputs, opts: &DeliverOptions) -> anyhow::Result<Vec<Job>> {
    let names: Vec<&str> = client.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut problems = Vec::new();
    for wanted in &opts.nodes {
        if !names.contains(&wanted.as_str()) {
            problems.push(format!(
                "--node {wanted}: {} has no such node (it has: {})",
                opts.client.display(),
                names.join(", ")
            ));
        }
    }
    let mut jobs = Vec::new();
    for node in client.nodes.iter().filter(|n| opts.nodes.is_empty() || opts.nodes.contains(&n.name)) {
        let Some(bmc) = node.bmc.clone() else {
            problems.push(format!(
                "node {}: no BMC to deliver through: give it bmc = {{ url = \"https://…\", username = \"…\", password-env = \"…\" }} in {} (or a [bmc] table for every node)",
                node.name,
                opts.client.display()
            ));
            continue;
        };
        match outputs.file_for(&node.name) {
            Ok(file) => {
                let base = media::base_for(opts.base_url.as_deref(), opts.serve, &bmc.url);
                jobs.push(Job { node: node.clone(), bmc, file, base });
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("cannot deliver:\n  {}", problems.join("\n  "));
    }
    Ok(jobs)
}

/// Where nodes report: the URL the image carries (client.toml's `[deliver] check-in`).
fn check_in_url(client: &Client, opts: &DeliverOptions) -> Option<String> {
    let url = client.check_in.clone()?;
    let port = media::host_port(&url);
    if opts.base_url.is_none() && port.is_some_and(|p| p != opts.serve.port()) {
        eprintln!(
            "smelt deliver: warning: nodes check in at {url}, but deliver listens on port {}: \
             unless something forwards it, no check-in will arrive (give --serve ADDR:{})",
            opts.serve.port(),
            port.unwrap_or_default()
        );
    }
    Some(url)
}

/// One node, start to end; every outcome goes on the board.
fn deliver_node(
    job: &Job,
    outputs: &Outputs,
    board: &Board,
    gate: &Gate,
    deadline: Instant,
    asks_check_in: bool,
    opts: &DeliverOptions,
) {
    let name = job.node.name.as_str();
    let fail = |step: Step, message: String| board.mark(name, step, Cell::Failed(message));
    let session = {
        let _turn = gate.enter();
        let session = match Session::open(&job.bmc) {
            Ok(s) => s,
            Err(e) => return fail(Step::Bmc, format!("{}: {e}", job.bmc.url)),
        };
        board.mark(name, Step::Bmc, Cell::Done(format!("{} {}", job.bmc.url, session.describe())));
        if let Some(file) = &job.file {
            let url = media::url(&job.base, file);
            let inserted = session.cd_drive().and_then(|drive| {
                let ejected = session.eject(&drive)?;
                session.insert(&drive, &url)?;
                Ok(format!(
                    "{url} in {}{}",
                    drive.odata_id,
                    if ejected { " (what it held ejected)" } else { "" }
                ))
            });
            match inserted {
                Ok(done) => board.mark(name, Step::Media, Cell::Done(done)),
                Err(e) => return fail(Step::Media, e),
            }
        } else {
            board.mark(name, Step::Media, Cell::Skipped("none: a network boot".to_string()));
        }
        let target = outputs.target(name, session.uefi(), &job.base);
        match session.boot_once(&target) {
            Ok(how) => board.mark(name, Step::Boot, Cell::Done(how)),
            Err(e) => return fail(Step::Boot, e),
        }
        match session.power() {
            Ok(how) => board.mark(name, Step::Power, Cell::Done(how.to_string())),
            Err(e) => return fail(Step::Power, e),
        }
        session
    };
    if opts.base_url.is_some() {
        board.mark(name, Step::Fetched, Cell::Skipped(format!("served by {}, not seen here", job.base)));
    }
    if !asks_check_in {
        board.mark(name, Step::CheckedIn, Cell::Skipped("no check-in URL in the image".to_string()));
    }
    let row = board.wait(name, deadline);
    if row.failure().is_none() && !row.arrived() {
        let waited = humantime(opts.wait);
        if matches!(row.cell(Step::Fetched), Cell::Pending) {
            let what = job
                .file
                .as_deref()
                .map_or("anything of the netboot tree".to_string(), |f| media::url(&job.base, f));
            fail(Step::Fetched, format!(
                "nothing fetched {what} in {waited}: can the BMC (and the node) reach this host at that address? \
                 (set --serve to an address they reach, or --base-url to a server that has OUTDIR)"
            ));
        } else {
            fail(Step::CheckedIn, format!(
                "the node did not check in within {waited}: see its console (did it boot? does its network reach the check-in URL?)"
            ));
        }
        return;
    }
    if row.failure().is_some() {
        return;
    }
    if opts.keep_media {
        board.mark(name, Step::Cleanup, Cell::Skipped("--keep-media".to_string()));
        return;
    }
    let _turn = gate.enter();
    let cleaned = (|| {
        if job.file.is_some() {
            session.eject(&session.cd_drive()?)?;
        }
        session.clear_override()
    })();
    match cleaned {
        Ok(()) => board.mark(
            name,
            Step::Cleanup,
            Cell::Done(
                if job.file.is_some() {
                    "media ejected, boot override cleared"
                } else {
                    "boot override cleared"
                }
                .to_string(),
            ),
        ),
        Err(e) => fail(Step::Cleanup, e),
    }
}

/// `--dry-run`: per node, what it would get and the requests delivering would make.
fn dry_run(jobs: &[Job], outputs: &Outputs) -> String {
    let mut out = String::new();
    for job in jobs {
        let image = job.file.as_ref().map(|f| media::url(&job.base, f));
        // The System's mode is only known from the BMC: show the UEFI HTTP boot where
        // the tree has one for the node (a Legacy System gets PXE instead).
        let target = outputs.target(&job.node.name, true, &job.base);
        out.push_str(&format!("node {} (BMC {}):\n", job.node.name, job.bmc.url));
        for line in redfish::dry_run(&job.bmc, image.as_deref(), &target) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str("(dry run: nothing was sent)\n");
    out
}

fn humantime(d: Duration) -> String {
    match d.as_secs() {
        s if s % 60 == 0 && s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A counting gate: at most N holders at once.
struct Gate {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Turn<'a>(&'a Gate);

impl Gate {
    fn new(n: usize) -> Gate {
        Gate { free: Mutex::new(n), freed: Condvar::new() }
    }

    fn enter(&self) -> Turn<'_> {
        let mut free = self.free.lock().expect("a delivery thread panicked");
        while *free == 0 {
            free = self.freed.wait(free).expect("a delivery thread panicked");
        }
        *free -= 1;
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().expect("a delivery thread panicked") += 1;
        self.0.freed.notify_one();
    }
}

/// A `--wait` value: `90s`, `20m`, `1h`, or seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 =
        number.parse().map_err(|_| format!("`{text}`: a duration is a number and a unit: 90s, 20m, 1h"))?;
    let seconds = match unit.trim() {
        "" | "s" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        other => return Err(format!("`{text}`: unknown unit `{other}` (s, m or h)")),
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("20m"), Ok(Duration::from_secs(1200)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("soon").is_err() && parse_duration("5d").is_err());
    }

    #[test]
    fn the_gate_lets_n_through() {
        let gate = Gate::new(2);
        let (a, b) = (gate.enter(), gate.enter());
        assert_eq!(*gate.free.lock().unwrap(), 0);
        drop(a);
        drop(b);
        assert_eq!(*gate.free.lock().unwrap(), 2);
    }
}
