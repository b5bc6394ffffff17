//! switchyard host library: everything the `switchyard` binary does, usable
//! from tests and other Rust programs. It links no ML runtime: models run in
//! a plugin (`backend-cpu`, `backend-cuda`, `backend-mps`) loaded at run time.
//!
//! - [`hardware`]: the host's own device probe (CUDA driver, Apple Metal).
//! - [`plugins`]: discovering, loading and inspecting plugin files.
//! - [`package`]: plugin packages (`switchyard plugin pack | install | list`).
//! - [`probe`] / [`render`]: the `switchyard probe` report.
//! - [`config`]: flag + environment settings shared by the subcommands.
//! - [`clip`] / [`faces`]: the CLIP and InsightFace pipelines (pre/post-processing in the host).
//! - [`loader`]: what `embed` and `serve` load, and loading it (one path for both).
//! - [`logging`]: the log filter and line format (text or JSON).
//! - [`server`]: `switchyard serve`, the HTTP service with dynamic batching.

pub mod clip;
pub mod config;
pub mod embed;
pub mod faces;
pub mod hardware;
pub mod image;
pub mod immich;
pub mod loader;
pub mod logging;
pub mod package;
pub mod plugins;
pub mod probe;
pub mod render;
pub mod resident;
pub mod runtime;
pub mod server;
pub mod util;
