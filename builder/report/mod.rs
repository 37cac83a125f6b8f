//! `report.json` and the closing table on stderr: every output with its size and
//! checksum, the tree's totals, each element's share, each package's (see
//! [`packages`]), the largest paths, every budget check, what trims removed; and with
//! `--manifest` the manifest, every entry as the archive holds it, one JSON line each,
//! zstd-compressed.

mod packages;

use std::io::Write as _;

use serde::Serialize;

use crate::budget::{Check, Measure};
use crate::config::size::human;
use crate::inspect::Item;
use crate::path::ImagePath;
use crate::tree::{Entry, Kind, Tree};

pub use packages::{by_package, PackageShare, NO_PACKAGE};

#[derive(Serialize)]
pub struct Report {
    pub image: String,
    pub smelt_version: &'static str,
    pub source_date_epoch: Option<i64>,
    pub outputs: Vec<OutputReport>,
    pub tree: Measure,
    pub largest: Vec<Largest>,
    /// The tree's regular files by the distribution package that installed them,
    /// largest first (empty without a package database in the image).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PackageShare>,
    pub budget: BudgetReport,
    /// Every PEM certificate in the image, by SHA-256 fingerprint (keys are never listed).
    pub certificates: Vec<CertReport>,
    /// Private keys, SSH host keys and password hashes in the image: where, from which
    /// element, and whether they were expected; never their content.
    pub secrets: Vec<crate::secrets::Secret>,
    /// What python-trim's rules removed (files and bytes each), so a user sees where
    /// to cut next.
    pub trim: Vec<crate::findings::Trimmed>,
    /// The Python kits in the image and the interpreter each carries or expects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub python: Vec<crate::findings::PythonKit>,
    /// Every EFI binary an output boots through — a UKI, the loaders on an ISO's EFI
    /// system partition or in a netboot tree — with its Authenticode digest and signers,
    /// to enrol or allow-list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub efi: Vec<EfiBinary>,
    /// What the build read from outside smelt, as `smelt.lock` holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::lock::Lock>,
}

#[derive(Serialize, Clone)]
pub struct EfiBinary {
    /// The output file, or `OUTPUT:/PATH` for a file inside one.
    pub file: String,
    #[serde(flatten)]
    pub identity: crate::efi::Identity,
}

#[derive(Serialize)]
pub struct CertReport {
    pub path: String,
    pub sha256_fingerprint: String,
    pub element: String,
}

/// Where distributions keep the CA certificates every system trusts.
const SYSTEM_TRUST: [&str; 3] = ["/usr/share/ca-certificates/", "/etc/ssl/certs/", "/etc/pki/ca-trust/"];

/// The certificates of the tree: `.pem`/`.crt` files up to 1 MiB that hold one.
pub fn certificates(tree: &Tree) -> Vec<CertReport> {
    tree.iter()
        .filter(|(p, e)| {
            (p.as_str().ends_with(".pem") || p.as_str().ends_with(".crt")) && e.size() <= 1 << 20
        })
        .filter_map(|(p, e)| {
            let Kind::File { source, .. } = &e.kind else { return None };
            let text = String::from_utf8(source.read_all().ok()?).ok()?;
            text.contains("-----BEGIN CERTIFICATE").then_some(())?;
            let sha256_fingerprint = crate::builtin::tls::fingerprint(&text).ok()?;
            Some(CertReport { path: p.to_string(), sha256_fingerprint, element: e.element.to_string() })
        })
        .collect()
}

/// The manifest's name in the output directory.
pub const MANIFEST: &str = "manifest.jsonl.zst";

/// Writes every entry of `tree` as a JSON line (the fields `inspect --json` lists, and
/// the element), zstd-compressed, to `out`: streamed, so a tree of a million entries
/// takes no more memory than one of ten.
pub fn write_manifest(tree: &Tree, out: impl std::io::Write) -> std::io::Result<()> {
    let mut z = zstd::stream::write::Encoder::new(out, 9)?;
    {
        let mut lines = std::io::BufWriter::with_capacity(1 << 16, &mut z);
        for (p, e) in tree.iter() {
            serde_json::to_writer(&mut lines, &entry(&p, &e))?;
            lines.write_all(b"\n")?;
        }
        lines.flush()?;
    }
    z.finish()?;
    Ok(())
}

#[derive(Serialize)]
pub struct OutputReport {
    pub kind: &'static str,
    pub path: String,
    pub bytes: u64,
    pub sha256: Option<String>,
    /// `ok`, `over`, or `unchecked` when the budget has no limit for it.
    pub budget: &'static str,
}

#[derive(Serialize)]
pub struct Largest {
    pub path: String,
    pub bytes: u64,
    pub element: String,
}

#[derive(Serialize)]
pub struct BudgetReport {
    pub source: String,
    pub checks: Vec<Check>,
}

/// One path of the tree as `inspect --json` lists it, plus the element it came from.
#[derive(Serialize)]
pub struct EntryReport<'a> {
    #[serde(flatten)]
    pub item: Item,
    pub element: &'a str,
}

fn entry<'a>(path: &ImagePath, e: &'a Entry) -> EntryReport<'a> {
    let item = Item {
        path: path.to_string(),
        kind: e.kind.letter(),
        mode: format!("{:04o}", e.mode),
        uid: e.uid,
        gid: e.gid,
        size: e.size(),
        target: match &e.kind {
            Kind::Symlink(t) => Some(t.clone()),
            _ => None,
        },
        rdev: match e.kind {
            Kind::Char(a, b) | Kind::Block(a, b) => Some((a, b)),
            _ => None,
        },
        sha256: None,
    };
    EntryReport { item, element: &e.element }
}

impl Report {
    /// The human table printed at the end of `build`.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let t = &self.tree;
        s.push_str(&format!(
            "tree: {} files, {} dirs, {} symlinks, {} devices; {} apparent, {} allocated\n",
            t.files,
            t.dirs,
            t.symlinks,
            t.devices,
            human(t.apparent_bytes),
            human(t.allocated_bytes)
        ));
        s.push_str(&format!("\n{:<24} {:>12} {:>12} {:>8}\n", "element", "apparent", "allocated", "files"));
        let mut elements: Vec<_> = t.elements.iter().collect();
        elements.sort_by(|a, b| b.1.apparent_bytes.cmp(&a.1.apparent_bytes).then(a.0.cmp(b.0)));
        for (name, e) in elements {
            s.push_str(&format!(
                "{:<24} {:>12} {:>12} {:>8}\n",
                name,
                human(e.apparent_bytes),
                human(e.allocated_bytes),
                e.files
            ));
        }
        let largest: Vec<&Largest> = self.largest.iter().take(10).collect();
        let w = largest.iter().map(|l| l.path.len()).max().unwrap_or(0).max(13);
        s.push_str(&format!("\n{:<w$} {:>10}  {}\n", "largest paths", "bytes", "element"));
        for l in largest {
            s.push_str(&format!("{:<w$} {:>10}  {}\n", l.path, human(l.bytes), l.element));
        }
        if !self.packages.is_empty() {
            let top: Vec<&PackageShare> = self.packages.iter().take(10).collect();
            let w = top.iter().map(|p| p.name.len()).max().unwrap_or(0).max(16);
            s.push_str(&format!(
                "\n{:<w$} {:>10} {:>8}   (of {} packages; all in report.json)\n",
                "largest packages",
                "bytes",
                "files",
                self.packages.iter().filter(|p| p.name != NO_PACKAGE).count()
            ));
            for p in top {
                s.push_str(&format!("{:<w$} {:>10} {:>8}\n", p.name, human(p.bytes), p.files));
            }
        }
        s.push_str(&format!("\nbudget ({}):\n", self.budget.source));
        for c in &self.budget.checks {
            s.push_str(&format!("  {} {c}\n", if c.ok { "ok  " } else { "OVER" }));
        }
        if !self.secrets.is_empty() {
            s.push_str("\nsecrets (content never shown):\n");
        }
        for x in &self.secrets {
            let why = if x.expected { "expected" } else { "NOT ASKED FOR" };
            s.push_str(&format!("  {} {:?} {} from {}: {why}\n", x.path, x.kind, x.mode, x.element));
        }
        // The system trust store (ca-certificates) is counted, not listed: the table is
        // for the certificates the image's own services present.
        let is_store = |p: &str| SYSTEM_TRUST.iter().any(|d| p.starts_with(d));
        let (store, own): (Vec<&CertReport>, Vec<&CertReport>) =
            self.certificates.iter().partition(|c| is_store(&c.path));
        if !self.certificates.is_empty() {
            s.push_str("\ncertificates (SHA-256):\n");
        }
        for c in own {
            s.push_str(&format!("  {}  {}\n", c.path, c.sha256_fingerprint));
        }
        if !store.is_empty() {
            s.push_str(&format!("  and {} of the system trust store (listed in report.json)\n", store.len()));
        }
        let w = self.outputs.iter().map(|o| o.path.len()).max().unwrap_or(0).max(6);
        if !self.outputs.is_empty() {
            s.push_str(&format!("\n{:<w$} {:>10}  {}\n", "output", "bytes", "sha256"));
        }
        for o in &self.outputs {
            let hash = o.sha256.as_deref().map_or("-", |h| &h[..16]);
            s.push_str(&format!("{:<w$} {:>10}  {}\n", o.path, human(o.bytes), hash));
        }
        s
    }
}
