//! Plugin packages: what ships from a CI build to a machine that did not
//! build it (`switchyard plugin pack | install | list`).
//!
//! A package is a `.tar.gz` holding a plugin, its torch companion and a
//! [`manifest::Manifest`] (name, device kind, ABI, version, the runtimes it
//! needs, the glibc it needs, the sha256 of every file). Nothing in it names
//! a path of the build machine: the plugin finds libtorch and ONNX Runtime
//! where it lands (switchyard_core::runtimes).
//!
//! Installing treats the archive as untrusted input from the internet: only
//! plain files with plain names, bounded sizes, no files writable by others,
//! every sha256 checked, the ABI checked twice (the manifest, then the real
//! plugin in a child process), and the files moved into the plugin folder
//! only once all of that holds, each by an atomic rename.

pub mod install;
pub mod manifest;
pub mod pack;

pub use install::{install, list, stage, InstallError, InstallReport, Staged, StagedFile};
pub use manifest::Manifest;
pub use pack::{pack, PackError};
