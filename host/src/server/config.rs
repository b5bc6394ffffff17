//! `switchyard serve` settings: one clap struct, every option a flag with an
//! environment variable behind it, and the effective configuration that is
//! logged once at startup.
//!
//! The API key and the admin key are [`Secret`]s: its `Debug`, `Display` and `Serialize` print
//! `***`, so no log line or `/info` answer can carry it by accident.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::accept::ConnectionLimits;
use crate::config::{boolish, DeviceArgs, FaceDetectArgs, ModelArgs, PluginArgs};
use crate::loader::{FaceDetect, LoadPlan};

/// A value that must never be printed (the API key, the admin key).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for comparison only.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret(value.to_string()))
}

/// `switchyard serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (0.0.0.0 to accept connections from other machines).
    #[arg(long, env = "SWITCHYARD_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// TCP port to listen on (0: any free port, printed at startup).
    #[arg(long, env = "SWITCHYARD_PORT", default_value_t = 3003)]
    pub port: u16,
    /// Bearer token every route but /health and /ready requires (unset: no authentication).
    #[arg(long, env = "SWITCHYARD_API_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub api_key: Option<Secret>,
    /// Bearer token for the admin routes (`POST /admin/reload`); unset: they answer 403.
    #[arg(long, env = "SWITCHYARD_ADMIN_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub admin_key: Option<Secret>,
    /// Most items (texts or images) run through the model at once.
    #[arg(long, env = "SWITCHYARD_MAX_BATCH_SIZE", default_value_t = 32)]
    pub max_batch_size: usize,
    /// How long a batch waits for more items after its first one arrived, in ms.
    #[arg(long, env = "SWITCHYARD_MAX_WAIT_MS", default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Turn dynamic batching off: every item runs alone (max batch 1, max wait 0).
    #[arg(long, env = "SWITCHYARD_NO_BATCHING", value_parser = boolish)]
    pub no_batching: bool,
    /// Items that may wait per model queue; beyond it requests get 429.
    #[arg(long, env = "SWITCHYARD_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,
    /// Longest a request waits for its model (queue + inference), in ms: then 504. A model
    /// stuck in one device call for longer makes its requests 503 and /ready 503 (0: no deadline).
    #[arg(long, env = "SWITCHYARD_REQUEST_TIMEOUT_MS", default_value_t = 60_000)]
    pub request_timeout_ms: u64,
    /// Unload a model's weights from the device after this many seconds without a request (0: keep
    /// them loaded). The next request loads them again and waits for it; the plugin stays loaded.
    #[arg(long, env = "SWITCHYARD_MODEL_IDLE_TTL_S", default_value_t = 0)]
    pub model_idle_ttl_s: u64,
    /// Seconds a client has to send a request's headers, from when the connection opens or its
    /// previous answer was sent; then the connection is closed (0: no limit).
    #[arg(long, env = "SWITCHYARD_HEADER_READ_TIMEOUT_S", default_value_t = 30)]
    pub header_read_timeout_s: u64,
    /// Most open connections; at the cap new ones wait in the listen backlog until one closes
    /// (0: the open-file limit, raised to its hard maximum, less 256).
    #[arg(long, env = "SWITCHYARD_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, env = "SWITCHYARD_MAX_BODY_BYTES", default_value_t = 32 << 20)]
    pub max_body_bytes: usize,
    /// Most bytes of request bodies held at once, over all requests: each reserves its
    /// Content-Length (the body limit when it declares none) until it is answered, and one that
    /// does not fit gets 429 (0: no limit).
    #[arg(long, env = "SWITCHYARD_MAX_BUFFERED_BODY_BYTES", default_value_t = 1 << 30)]
    pub max_buffered_body_bytes: usize,
    /// Most texts or images in one request (413 beyond).
    #[arg(long, env = "SWITCHYARD_MAX_ITEMS", default_value_t = 64)]
    pub max_items: usize,
    /// Longest text in characters (422 beyond); CLIP reads the first 77 tokens anyway.
    #[arg(long, env = "SWITCHYARD_MAX_TEXT_CHARS", default_value_t = 2048)]
    pub max_text_chars: usize,
    #[command(flatten)]
    pub decode: crate::config::DecodeArgs,
    /// Images decoded and preprocessed at once, off the async runtime (0: one per core).
    #[arg(long, env = "SWITCHYARD_PREPROCESS_WORKERS", default_value_t = 0)]
    pub preprocess_workers: usize,
    /// `cpu`: retry a batch that fails on the selected device on the CPU plugin (checked at
    /// startup to share the selected plugin's libtorch and ONNX Runtime); empty: no fallback.
    #[arg(long, env = "FALLBACK", default_value = "")]
    pub fallback: String,
    #[command(flatten)]
    pub faces: FaceArgs,
    #[command(flatten)]
    pub immich: crate::immich::ImmichArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub plugins: PluginArgs,
    #[command(flatten)]
    pub models: ModelArgs,
}

impl ServeArgs {
    /// What `serve` loads, from these settings.
    pub fn load_plan(&self) -> anyhow::Result<LoadPlan> {
        LoadPlan::from_args(&self.device, &self.plugins, &self.models, self.fallback()?)
    }

    /// Whether `FALLBACK=cpu` is set; anything but cpu, none or empty is an error.
    pub fn fallback(&self) -> anyhow::Result<bool> {
        match self.fallback.trim().to_ascii_lowercase().as_str() {
            "" | "none" | "off" => Ok(false),
            "cpu" => Ok(true),
            other => anyhow::bail!("`FALLBACK={other}` is not a fallback device; use cpu, or leave it unset"),
        }
    }
}

/// `POST /v1/faces` settings (insightface's `FaceAnalysis` defaults).
#[derive(Debug, Clone, Args)]
pub struct FaceArgs {
    /// Do not load the face models; `POST /v1/faces` answers 503 `faces_unavailable`.
    #[arg(long = "no-faces", env = "SWITCHYARD_FACES", action = clap::ArgAction::SetFalse, value_parser = boolish)]
    pub faces: bool,
    #[command(flatten)]
    pub detect: FaceDetectArgs,
    /// Images that may wait in the face queue (decoded, full size: bounds memory); beyond it 429.
    #[arg(long, env = "SWITCHYARD_FACE_QUEUE_CAPACITY", default_value_t = 128)]
    pub face_queue_capacity: usize,
}

/// The face settings in effect.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FaceConfig {
    pub enabled: bool,
    #[serde(flatten)]
    pub detect: FaceDetect,
    /// The face queue's batching (its own capacity).
    pub batch: BatchConfig,
}

/// Batching settings of one model queue.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BatchConfig {
    pub max_batch_size: usize,
    #[serde(serialize_with = "crate::util::millis")]
    pub max_wait: Duration,
    pub queue_capacity: usize,
    /// The per-request deadline (`None`: none).
    #[serde(rename = "request_timeout_ms", serialize_with = "optional_millis")]
    pub request_timeout: Option<Duration>,
}

fn optional_millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => crate::util::millis(d, s),
        None => s.serialize_none(),
    }
}

/// Request limits.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_buffered_body_bytes: usize,
    pub max_items: usize,
    pub max_text_chars: usize,
    pub max_pixels: u64,
    pub scaled_decode: bool,
    pub preprocess_workers: usize,
}

/// What the server runs with, after defaults and the batching switch are applied.
#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub api_key: Option<Secret>,
    pub admin_key: Option<Secret>,
    pub batch: BatchConfig,
    pub limits: Limits,
    pub faces: FaceConfig,
    /// Seconds without a request after which a model is unloaded (0: never).
    pub model_idle_ttl_s: u64,
    pub connections: ConnectionLimits,
    /// Immich's model cache, for `POST /predict`.
    pub immich_models: std::path::PathBuf,
}

impl ServeArgs {
    /// The effective server settings.
    pub fn server_config(&self) -> ServerConfig {
        let (max_batch_size, max_wait) = if self.no_batching {
            (1, Duration::ZERO)
        } else {
            (self.max_batch_size.max(1), Duration::from_millis(self.max_wait_ms))
        };
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let request_timeout = (self.request_timeout_ms > 0).then(|| Duration::from_millis(self.request_timeout_ms));
        let batch =
            BatchConfig { max_batch_size, max_wait, queue_capacity: self.queue_capacity.max(1), request_timeout };
        let f = &self.faces;
        ServerConfig {
            addr: SocketAddr::new(self.host, self.port),
            api_key: self.api_key.clone().filter(|k| !k.0.is_empty()),
            admin_key: self.admin_key.clone().filter(|k| !k.0.is_empty()),
            batch,
            faces: FaceConfig {
                enabled: f.faces,
                detect: FaceDetect::from(&f.detect),
                batch: BatchConfig { queue_capacity: f.face_queue_capacity.max(1), ..batch },
            },
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                max_buffered_body_bytes: self.max_buffered_body_bytes,
                max_items: self.max_items.max(1),
                max_text_chars: self.max_text_chars.max(1),
                max_pixels: self.decode.max_pixels,
                scaled_decode: self.decode.scaled_decode,
                preprocess_workers: if self.preprocess_workers == 0 { cores } else { self.preprocess_workers },
            },
            model_idle_ttl_s: self.model_idle_ttl_s,
            immich_models: self.immich.cache_dir(),
            connections: ConnectionLimits {
                header_read_timeout: (self.header_read_timeout_s > 0)
                    .then(|| Duration::from_secs(self.header_read_timeout_s)),
                max_connections: if self.max_connections == 0 {
                    super::accept::default_max_connections()
                } else {
                    self.max_connections
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_never_prints() {
        let key = Secret("hunter2".into());
        assert_eq!(format!("{key:?}"), "***");
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"***\"");
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        faces: FaceArgs,
    }

    #[test]
    fn faces_are_on_unless_switched_off() {
        use clap::Parser;
        assert!(Cli::parse_from(["x"]).faces.faces);
        assert!(!Cli::parse_from(["x", "--no-faces"]).faces.faces);
    }
}
