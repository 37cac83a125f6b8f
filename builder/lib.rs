//! smelt builds Linux initramfs images, ISOs and ramdisk tarballs by composing ordered
//! *elements*, rootless and reproducibly, with size budgets checked on every build.
//!
//! The pipeline of `smelt build` (`ops::build` runs it, one named step after another):
//!
//! 1. [`config`] — read `image.toml`, `client.toml` and `size-budget.toml`: raw serde
//!    types checked once into models; errors point at file:line:col.
//! 2. [`element`] — find elements on the element path (built-ins are embedded in the
//!    binary), read their manifests and params, resolve `depends`/`provides`/
//!    `conflicts` into one order, and decide which hooks run when.
//! 3. [`plan`] — all of that with the params merged and checked, the built-in
//!    elements' params typed ([`builtin`]), the hooks they generate, the client, the
//!    kernel chosen ([`kernel`]), the budget and the build's one time, before any work;
//!    `smelt plan` prints it.
//! 4. [`stage`] — build the image as a [`tree`] of records: each built-in element's
//!    work, `root/` overlays and `templates/` (through [`render`]) by reference; phase
//!    hooks on a materialised copy when an element has any (DIB's environment and
//!    smelt's stand-in tools), each hook's changes attributed to its element and what
//!    it left read back by its origin; then prune, permissions, devices, and for
//!    `kernel = "image"` the kernel taken out of `/boot`. [`network`] renders the
//!    client's per-node configs.
//! 5. [`budget`] — measure the tree (apparent, allocated, per element, per path) and
//!    check the budget before and after writing; [`secrets`] names the keys and
//!    hashes that ride along.
//! 6. [`outputs`] — every output kind of every variant (the image, or one per node),
//!    assembled from the [`archive`] writers (newc through [`io`]'s compressors, ISO,
//!    tar, dir): bootable ISOs, ramdisk tarballs, network-boot trees, config drives,
//!    unified kernel images (made and signed by [`efi`]); each written under a temporary name and published only when every output is
//!    within budget.
//! 7. [`report`] — `report.json` and the closing table; [`lock`] — `smelt.lock`, every
//!    input the build read (project files, element directories, the cache files its
//!    hooks used, host files), each by SHA-256, recorded as the steps above read them.
//!
//! Beside the pipeline: [`inspect`] reads outputs back for `smelt inspect` and `diff`
//! ([`efi`] reads EFI binaries: sections, Authenticode digests and signatures);
//! [`cli`] and [`ops`] are the commands (one function each) — `ops::deliver` takes the
//! outputs to the nodes through their BMCs ([`redfish`]) while [`server`] (shared with
//! `smelt serve`) hands out the files and hears the nodes check in; [`ui`] is what the user
//! sees on stderr; [`cleanup`] undoes a stopped build; [`namespace`] isolates hooks and
//! checks; [`path`] is an image path, kept with host paths in the process-long
//! [`arena`]; [`cache`] is where fetched things are kept, [`platform`] the host's
//! architecture, [`distro`] the image's distribution family, [`findings`] what built-in
//! elements found. [`bundle`] packs a lock's inputs as an OCI layout (signed with an SSH
//! key) and lays them out again for `smelt build --from`; [`registry`] speaks the OCI
//! distribution API, for the shared cache; [`trust`] is whom smelt's HTTPS clients trust.
//!
//! Layers import downwards only: `arena`, `path`, `io`, `tree` at the bottom import
//! nothing of `stage`, `ops` or `cli`.

mod archive;
mod arena;
pub mod budget;
mod builtin;
mod bundle;
mod cache;
pub mod cleanup;
pub mod cli;
pub mod config;
mod diskimage;
mod distro;
mod efi;
mod element;
mod findings;
mod inspect;
mod io;
mod kernel;
mod lock;
mod media;
mod namespace;
mod network;
pub mod ops;
mod outputs;
mod path;
pub mod plan;
mod platform;
mod redfish;
mod registry;
mod render;
mod report;
mod secrets;
mod server;
mod stage;
mod tree;
mod trust;
pub mod ui;
