//! The one setting of the Immich routes: where Immich's model cache is.
//!
//! Immich's service reads `MACHINE_LEARNING_CACHE_FOLDER` (`/cache` in its
//! container image), so a container that mounts Immich's `model-cache` volume
//! at the same place works without any setting.

use std::path::PathBuf;

use clap::Args;

/// Where Immich's image keeps its model cache.
pub const DEFAULT_CACHE: &str = "/cache";

/// `switchyard serve` settings for the Immich routes (`/ping`, `/predict`).
#[derive(Debug, Clone, Args)]
pub struct ImmichArgs {
    /// Immich's model cache (read-only: `clip/<name>/`, `facial-recognition/<name>/`), for
    /// `POST /predict`. Unset: `MACHINE_LEARNING_CACHE_FOLDER` (Immich's own setting), else /cache.
    #[arg(long = "immich-models", env = "SWITCHYARD_IMMICH_MODELS")]
    pub immich_models: Option<PathBuf>,
}

impl ImmichArgs {
    /// The cache folder: the flag, else Immich's variable, else [`DEFAULT_CACHE`].
    pub fn cache_dir(&self) -> PathBuf {
        let immich = std::env::var_os("MACHINE_LEARNING_CACHE_FOLDER").filter(|v| !v.is_empty()).map(PathBuf::from);
        self.immich_models
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .or(immich)
            .unwrap_or_else(|| DEFAULT_CACHE.into())
    }
}
