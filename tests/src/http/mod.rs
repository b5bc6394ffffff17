//! HTTP test support, one module per concern, all re-exported here so that
//! tests write `switchyard_tests::http::{Server, post_json, ...}`:
//!
//! - [`server`]: a `switchyard serve` process on a free port;
//! - [`client`]: requests, [`Reply`], the error-shape checks;
//! - [`multipart`]: `multipart/form-data` bodies;
//! - [`data`]: synthetic JPEGs, embeddings and their cosine;
//! - [`load`]: the load generator.

pub mod client;
pub mod data;
pub mod load;
pub mod multipart;
pub mod server;

pub use client::{assert_error, assert_error_saying, post_expect_continue, post_json, send, Reply};
pub use data::{cosine, make_images, vectors};
pub use load::{Load, LoadCounts};
pub use multipart::multipart;
pub use server::{cpu_plugins, free_port, models, rss_kb, Server};
