//! smelt's integration tests: one binary, run by `tests/run.sh` (which installs the
//! system tools they check against: GNU cpio, bsdtar, QEMU, a kernel, busybox).

mod base_image;
mod boot;
mod bundle;
mod cli;
mod client;
mod config_drive;
mod corpus;
mod crosscheck;
mod debian;
mod deliver;
mod dib;
mod elements;
mod errors;
mod fieldkit;
mod inspect;
mod ipa;
mod iso;
mod litter;
mod netboot;
mod netkit;
mod network;
mod python;
mod registry;
mod repro;
mod secrets;
mod secureboot;
mod staging;
mod uki;
mod util;
