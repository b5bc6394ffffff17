//! Plugin files: finding them, loading them through abi_stable, and
//! inspecting them in child processes so that a plugin that crashes, hangs
//! or drags in a second libtorch cannot take the host down.

pub mod discover;
pub mod inspect;
pub mod load;
pub mod maps;

pub use discover::{discover, FoundPlugin};
pub use inspect::{inspect_in_child, inspect_in_process, Depth, PluginReport};
pub use load::{LoadError, LoadedPlugin};
