//! `smelt build`: plan, stage, measure, check the budget, write every output under a
//! temporary name, and publish them only when all are within budget.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::budget::{self, OverBudget};
use crate::config::image::OutputKind;
use crate::findings::Findings;
use crate::io::atomic::{Pending, Scratch};
use crate::io::outdir::OutDir;
use crate::lock::{self, Lock};
use crate::outputs::{self, variants::Variants};
use crate::plan::{self, Inputs, Plan};
use crate::registry::cache::SharedCache;
use crate::report::{self, BudgetReport, Largest, Report};
use crate::stage::{self, hooks::HookFailed};
use crate::tree::Tree;
use crate::ui::Ui;

pub struct BuildOptions {
    pub inputs: Inputs,
    pub outdir: PathBuf,
    pub per_node: bool,
    /// Write the manifest (every entry) beside report.json.
    pub manifest: bool,
    /// Rebuild from this bundle: every input from it, no network.
    pub from: Option<PathBuf>,
    /// Only from a bundle signed by this public key (`.pub`).
    pub verify: Option<PathBuf>,
    /// A shared cache in a registry (`oci://HOST/REPO`), and the CA its TLS is checked with.
    pub shared_cache: Option<String>,
    pub registry_ca: Option<PathBuf>,
}

pub fn build(opts: &BuildOptions, ui: &Ui) -> anyhow::Result<Report> {
    let Some(bundle) = &opts.from else { return build_recorded(opts, None, ui) };
    std::fs::create_dir_all(&opts.outdir).with_context(|| format!("creating {}", opts.outdir.display()))?;
    let scratch = Scratch::new(&opts.outdir, "smelt-from")?;
    let key = opts.verify.as_deref().map(crate::bundle::sshsig::PublicKey::read).transpose()?;
    // From a registry: the bundle and its signatures fetched into a layout first.
    let layout = match bundle.to_str().filter(|b| b.starts_with("oci://")) {
        Some(url) => {
            let at = scratch.path().join("pulled");
            let reference = crate::registry::Reference::parse(url)?;
            ui.step("pull", || crate::bundle::remote::pull(&reference, opts.registry_ca.as_deref(), &at))?;
            at
        }
        None => bundle.clone(),
    };
    let shown = bundle.display().to_string();
    let unpacked =
        ui.step("unpack", || crate::bundle::unpack(&layout, &shown, scratch.path(), key.as_ref()))?;
    ui.info(&format!(
        "smelt: rebuilding {} from {} ({}, {} inputs, every digest checked{})",
        unpacked.lock.name,
        bundle.display(),
        unpacked.manifest,
        unpacked.lock.inputs.len(),
        unpacked.verified_by.as_ref().map_or(String::new(), |k| format!("; signed by {k}, verified"))
    ));
    crate::cache::set_dir(unpacked.cache());
    let lock = &unpacked.lock;
    let client = match (&opts.inputs.client, &lock.client) {
        (Some(given), _) => Some(given.clone()),
        (None, Some(name)) => lock.find(name).map(|i| unpacked.path_of(i)),
        (None, None) => None,
    };
    let mut elements_path = opts.inputs.elements_path.clone();
    elements_path.push(unpacked.elements());
    let inputs = Inputs {
        image: unpacked.project().join(&lock.image),
        client,
        elements_path,
        sets: lock.sets.iter().chain(&opts.inputs.sets).cloned().collect(),
        offline: true,
        source_date_epoch: opts.inputs.source_date_epoch.or(lock.source_date_epoch),
    };
    let rebuild = BuildOptions {
        inputs,
        outdir: opts.outdir.clone(),
        per_node: opts.per_node || lock.per_node,
        manifest: opts.manifest,
        from: None,
        verify: None,
        shared_cache: None,
        registry_ca: None,
    };
    let restored = crate::lock::Restored { host_root: unpacked.host_root() };
    build_recorded(&rebuild, Some(restored), ui)
}

/// A build, recording its inputs into `smelt.lock`.
fn build_recorded(
    opts: &BuildOptions,
    restored: Option<crate::lock::Restored>,
    ui: &Ui,
) -> anyhow::Result<Report> {
    let started = std::time::Instant::now();
    let project = opts.inputs.image.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let from_bundle = restored.is_some();
    let recording = lock::Recording::begin(project, restored);
    let mut plan = ui.step("plan", || plan::make(&opts.inputs))?;
    record_project(&plan, &opts.inputs);
    refuse_unbuilt(&plan, opts)?;
    let shared = match &opts.shared_cache {
        Some(url) => Some(SharedCache::open(url, opts.registry_ca.as_deref())?),
        None => None,
    };
    let shared = shared.map(|s| shared_cache_key(&plan, &opts.inputs).map(|k| (s, k))).transpose()?;
    // The cache files a registry had for this build: all of them are its inputs.
    let pulled = match &shared {
        Some((cache, key)) => pull_shared(cache, key, &mut plan, ui),
        None => None,
    };
    let hit = pulled.is_some();
    for w in plan.client.iter().flat_map(|c| &c.warnings) {
        ui.warn(&w.one_line());
    }
    let outdir = OutDir::claim(&opts.outdir, &["config-drive"])?;
    if !outdir.swept.is_empty() {
        let names: Vec<String> = outdir.swept.iter().map(|p| p.display().to_string()).collect();
        ui.info(&format!("smelt: removed what stopped builds left: {}", names.join(", ")));
    }
    let work = Scratch::new(&opts.outdir, "smelt-work")?;
    // From a bundle, the cache holds the bundle's inputs and nothing else: all of them are
    // this build's, used or not, so its lock is the bundle's when nothing was overridden.
    let watch = (!from_bundle).then(|| lock::watch::Watch::start(&crate::cache::watched())).transpose()?;
    let (staged, work) = stage(&plan, work, opts, ui)?;
    let mut from_cache = match watch {
        Some(w) => w.stop(),
        None => lock::watch::files(&crate::cache::watched()),
    };
    from_cache.extend(pulled.into_iter().flatten());
    let tree = staged.tree;
    let measure = ui.step("measure", || Ok(budget::measure(&tree)))?;
    let mut checks = budget::check_tree(&plan.budget, &tree, &measure, &plan.image.outputs);
    let mut report = tree_report(&plan, &tree, measure, staged.found, ui);
    // Tree limits fail fast: no output is written when the tree alone is over.
    if checks.iter().any(|c| !c.ok) {
        return over_budget(report, checks, &plan);
    }

    // What staging freed (walk buffers on every core's heap, hook scratch) goes back to
    // the kernel before the outputs' own buffers are made: 5-8 MiB less at the peak of a
    // large ISO. SAFETY: malloc_trim only returns free pages of the heap.
    unsafe { libc::malloc_trim(0) };
    let variants = Variants::new(&plan, &tree, opts.per_node);
    let produced = outputs::write(
        &plan,
        staged.kernel.as_deref(),
        staged.iso_extras.as_ref(),
        &variants.list(&plan.image.name),
        &opts.outdir,
        work.path(),
        ui,
    )?;
    report.outputs = produced.reports;
    report.efi = produced.efi;
    checks.extend(produced.checks);
    if checks.iter().any(|c| !c.ok) {
        return over_budget(report, checks, &plan);
    }
    report.budget.checks = checks;
    let inputs = ui.step("lock", || recording.finish(from_cache))?;
    let secrets =
        report.secrets.iter().map(|s| lock::ImageSecret { path: s.path.clone(), expected: s.expected });
    report.lock = Some(lock_of(&plan, opts, inputs, secrets.collect())?);
    for out in produced.written {
        out.pending.publish()?;
    }
    for file in produced.checksum_files {
        file.publish()?;
    }
    write_report(&report, &tree, opts)?;
    let lock = report.lock.as_ref().expect("made above");
    lock::write(lock, &opts.outdir)?;
    if let (Some((cache, key)), false) = (&shared, hit) {
        match ui.step("push", || cache.push(key, lock, &crate::cache::dir())) {
            Ok((files, bytes)) => ui.info(&format!(
                "smelt: pushed this build's cache inputs to {} as {key} ({files} new, {:.1} MiB)",
                cache.name(),
                bytes as f64 / (1 << 20) as f64
            )),
            Err(e) => ui.warn(&format!(
                "the registry cache {}: {e:#}; the outputs are built, the cache is not updated",
                cache.name()
            )),
        }
    }
    let outputs = report.outputs.len();
    ui.info(&format!(
        "smelt: built {} ({} output{}) in {:.1} s\n\n{}",
        plan.image.name,
        outputs,
        if outputs == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64(),
        report.table()
    ));
    Ok(report)
}

/// The key this build is cached under in a registry.
fn shared_cache_key(plan: &Plan, inputs: &Inputs) -> anyhow::Result<String> {
    let elements: Vec<(String, PathBuf)> = plan
        .resolved
        .elements
        .iter()
        .filter_map(|e| match &e.origin {
            crate::element::Origin::Dir(d) => Some((e.name.clone(), d.clone())),
            _ => None,
        })
        .collect();
    crate::registry::cache::key(&plan.image.name, &plan.image.file, &elements, &inputs.sets)
}

/// Fetches this build's cache inputs from the registry; when it has them all, the build
/// runs offline from them (the same bytes as the build that pushed them). A registry
/// that cannot be reached is warned about, and the build goes on without it.
fn pull_shared(cache: &SharedCache, key: &str, plan: &mut Plan, ui: &Ui) -> Option<Vec<PathBuf>> {
    match ui.step("pull", || cache.pull(key, &crate::cache::dir())) {
        Ok(Some(p)) => {
            plan.offline = true;
            ui.info(&format!(
                "smelt: {} has this build's inputs as {key} ({} files, {} fetched, {:.1} MiB): building offline from them",
                cache.name(),
                p.files,
                p.fetched,
                p.bytes as f64 / (1 << 20) as f64
            ));
            Some(p.paths)
        }
        Ok(None) => {
            ui.info(&format!(
                "smelt: {} has no {key} yet: building from the mirrors, then pushing",
                cache.name()
            ));
            None
        }
        Err(e) => {
            ui.warn(&format!("the registry cache {}: {e:#}; building without it", cache.name()));
            None
        }
    }
}

/// Records what the plan read from the project: image.toml, the client inventory, the
/// budget, and every element that comes from a directory.
fn record_project(plan: &Plan, inputs: &Inputs) {
    lock::read(&plan.image.file);
    if let Some(client) = &inputs.client {
        lock::read(client);
    }
    if let Some(budget) = &plan.budget.source {
        lock::read(budget);
    }
    for e in &plan.resolved.elements {
        if let crate::element::Origin::Dir(dir) = &e.origin {
            lock::element(&e.name, dir);
        }
    }
}

/// The lock of this build: its inputs and what it was asked for.
fn lock_of(
    plan: &Plan,
    opts: &BuildOptions,
    inputs: Vec<lock::Input>,
    secrets: Vec<lock::ImageSecret>,
) -> anyhow::Result<Lock> {
    let project = lock::absolute(plan.image.dir());
    let name_of = |path: &Path| -> Option<String> {
        let abs = lock::absolute(path);
        let found = inputs.iter().find(|i| match i.kind {
            lock::Kind::Project => project.join(&i.path) == abs,
            lock::Kind::Host => Path::new(&i.path) == abs,
            _ => false,
        });
        found.map(lock::Input::name)
    };
    let image = plan.image.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let client = opts.inputs.client.as_deref().map(|c| {
        name_of(c)
            .ok_or_else(|| anyhow::anyhow!("the client inventory {} is not among the inputs", c.display()))
    });
    Ok(Lock {
        lock_version: 1,
        smelt_version: env!("CARGO_PKG_VERSION").into(),
        name: plan.image.name.clone(),
        image,
        client: client.transpose()?,
        sets: opts.inputs.sets.clone(),
        per_node: opts.per_node,
        source_date_epoch: opts.inputs.source_date_epoch,
        secrets,
        inputs,
    })
}

/// Stages the image in `work`; when a hook fails, its staging tree and logs are kept in
/// `OUTDIR/smelt-failed/`, and the error says where.
fn stage(
    plan: &Plan,
    work: Scratch,
    opts: &BuildOptions,
    ui: &Ui,
) -> anyhow::Result<(stage::Staged, Scratch)> {
    match ui.step("stage", || stage::stage(plan, work.path(), ui)) {
        Ok(staged) => Ok((staged, work)),
        Err(e) if e.downcast_ref::<HookFailed>().is_some() => {
            // The hook's log moves with the tree it is in.
            let at = work.path().display().to_string();
            let kept = work.keep(&opts.outdir.join("smelt-failed"))?;
            let e = e.to_string().replace(&at, &kept.display().to_string());
            bail!("{e}\n  the staging tree and logs are kept in {} (remove it when done)", kept.display());
        }
        Err(e) => Err(e),
    }
}

/// The report of the staged tree, before any output is written: its totals, largest
/// paths, packages, certificates, secrets, what trims removed and the Python kits.
fn tree_report(plan: &Plan, tree: &Tree, measure: budget::Measure, found: Findings, ui: &Ui) -> Report {
    Report {
        image: plan.image.name.clone(),
        smelt_version: env!("CARGO_PKG_VERSION"),
        source_date_epoch: plan.epoch,
        outputs: Vec::new(),
        largest: budget::largest(tree, 20)
            .into_iter()
            .map(|(path, bytes, element)| Largest { path, bytes, element })
            .collect(),
        packages: report::by_package(tree),
        tree: measure,
        budget: BudgetReport { source: plan.budget.source_name(), checks: Vec::new() },
        certificates: report::certificates(tree),
        secrets: secrets(plan, tree, ui),
        trim: found.trimmed,
        python: found.python_kits,
        efi: Vec::new(),
        lock: None,
    }
}

/// The secrets of the tree, each unexpected one warned about (path, kind, element).
fn secrets(plan: &Plan, tree: &Tree, ui: &Ui) -> Vec<crate::secrets::Secret> {
    let made = plan.builtins.secrets();
    let expected = crate::secrets::Expected { made: &made, allow: &plan.image.secrets_allow };
    let found = crate::secrets::find(tree, &expected);
    for s in found.iter().filter(|s| !s.expected) {
        let what = match s.kind {
            crate::secrets::SecretKind::PrivateKey => "a private key",
            crate::secrets::SecretKind::SshHostKey => "an SSH host key",
            crate::secrets::SecretKind::PasswordHash => "password hashes",
        };
        ui.warn(&format!(
            "{} holds {what} (mode {}, from element `{}`){}; remove it, or list it in [secrets] allow in {} if it \
             is meant to be there",
            s.path,
            s.mode,
            s.element,
            s.note.as_ref().map_or(String::new(), |n| format!(": {n}")),
            plan.image.file.display()
        ));
    }
    found
}

/// Outputs that need a client inventory are refused without one, before any work.
fn refuse_unbuilt(plan: &Plan, opts: &BuildOptions) -> anyhow::Result<()> {
    if opts.per_node && plan.nodes().is_empty() {
        bail!("--per-node needs a client inventory with nodes: add --client CLIENT.toml");
    }
    if plan.image.outputs.contains(&OutputKind::Netboot) && plan.nodes().is_empty() {
        bail!(
            "output `netboot` (in {}) boots each node by its MACs: add --client CLIENT.toml with its nodes",
            plan.image.file.display()
        );
    }
    let strangers_boot_image = plan.client.as_ref().is_some_and(|c| c.netboot.unknown_boots_image);
    if plan.image.outputs.contains(&OutputKind::Netboot) && opts.per_node && strangers_boot_image {
        bail!(
            "client.toml: [netboot] unknown = \"image\" boots strangers with the shared initramfs, and \
             --per-node makes only each node's: build without --per-node, or set unknown = \"local\""
        );
    }
    if plan.image.outputs.contains(&OutputKind::ConfigDrive) && plan.nodes().is_empty() {
        bail!(
            "output `config-drive` (in {}) makes one drive per node: add --client CLIENT.toml with its nodes",
            plan.image.file.display()
        );
    }
    Ok(())
}

fn over_budget(mut report: Report, checks: Vec<budget::Check>, plan: &Plan) -> anyhow::Result<Report> {
    let violations: Vec<_> = checks.iter().filter(|c| !c.ok).cloned().collect();
    report.budget.checks = checks;
    eprintln!("{}", report.table());
    Err(OverBudget { violations, budget_file: plan.budget.source_name() }.into())
}

/// `report.json`, and with `--manifest` the manifest of every entry, each published
/// once complete.
fn write_report(report: &Report, tree: &Tree, opts: &BuildOptions) -> anyhow::Result<()> {
    if opts.manifest {
        let pending = Pending::new(&opts.outdir.join(report::MANIFEST));
        let file = std::io::BufWriter::with_capacity(1 << 20, pending.create_file()?);
        report::write_manifest(tree, file).context("writing the manifest")?;
        pending.publish()?;
    }
    let pending = Pending::new(&opts.outdir.join("report.json"));
    let mut out = std::io::BufWriter::new(pending.create_file()?);
    serde_json::to_writer_pretty(&mut out, report).context("writing report.json")?;
    out.write_all(b"\n")?;
    out.into_inner().map_err(|e| e.into_error()).context("writing report.json")?;
    pending.publish()
}
