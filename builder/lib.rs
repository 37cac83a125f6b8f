//! smelt builds Linux initramfs images, ISOs and ramdisk tarballs by composing ordered
//! *elements*, rootless and reproducibly, with size budgets checked on every build.
//!
//! The pipeline of `smelt build`, one module per step (see `ops::build`):
//!
//! 1. [`config`] — read `image.toml` (and `size-budget.toml`, `client.toml`): raw serde
//!    types checked once into models; errors point at file:line:col.
//! 2. [`element`] — find elements on the element path (built-ins are embedded in the
//!    binary), read their manifests, resolve `depends`/`provides`/`conflicts` into one
//!    order. [`plan`] gathers all of that, plus params and hooks, before any work.
//! 3. [`stage`] — build the image as a [`stage::tree::Tree`] of records: bases, `root/`
//!    overlays and templates by reference; phase hooks on a materialised copy when an
//!    element has any; then prune, permissions, devices.
//! 4. [`budget`] — measure the tree (apparent, allocated, per element, per path) and
//!    check the budget before and after writing.
//! 5. [`archive`] — stream the tree as newc cpio through [`io`]'s compressors and
//!    counting writers, lay it out as an ISO (bootable ones assembled by [`boot`]), or
//!    pack kernel + initramfs in a tarball; each into a temporary file, published only
//!    when every output is within budget.
//! 6. [`report`] — `report.json` and the closing table.
//!
//! [`inspect`] reads outputs back for `smelt inspect` and `smelt diff`.

pub mod archive;
pub mod boot;
pub mod budget;
pub mod builtin;
pub mod cache;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod config_drive;
pub mod element;
pub mod inspect;
pub mod io;
pub mod network;
pub mod ops;
pub mod outputs;
pub mod path;
pub mod plan;
pub mod platform;
pub mod render;
pub mod report;
pub mod secrets;
pub mod stage;
pub mod tree;
pub mod ui;
