//! Passing the listening socket and the swap history to the next image of
//! this process across `execve`, for a plugin swap (see [`super::swap`] and
//! docs/architecture.md, "Swapping plugins").
//!
//! A process must never hold two libtorch builds and plugins are never
//! unloaded, so another plugin needs a fresh process image. Re-executing in
//! place keeps the PID (systemd, docker and the tests keep watching the same
//! process) and, with the socket's fd number in `SWITCHYARD_LISTEN_FD`, the
//! listening socket itself: while the new image loads its models the kernel
//! queues new connections in the socket's backlog, so clients wait instead of
//! being refused. Unix only; elsewhere a swap is refused with a clear error.

use std::path::PathBuf;

use serde::Serialize;

/// The listening socket's fd number, set only by a swap.
pub const LISTEN_FD: &str = "SWITCHYARD_LISTEN_FD";
/// How many swaps this process has been through.
const SWAPS: &str = "SWITCHYARD_SWAPS";
/// When the last swap started, ms since the Unix epoch.
const SWAPPED_AT: &str = "SWITCHYARD_SWAPPED_AT_MS";
/// The plugin (path and sha256) the previous image served with.
const PREVIOUS_PATH: &str = "SWITCHYARD_SWAP_FROM_PATH";
const PREVIOUS_SHA256: &str = "SWITCHYARD_SWAP_FROM_SHA256";

/// The swaps this process (this PID) went through, as `/info` shows them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SwapHistory {
    /// Swaps so far (0: the process runs the image it was started with).
    pub count: u64,
    /// When the last one started, ms since the Unix epoch.
    pub last_unix_ms: Option<u64>,
    /// The plugin the previous image served with.
    pub previous_plugin_path: Option<PathBuf>,
    pub previous_plugin_sha256: Option<String>,
}

/// Why the socket could not be handed over or adopted.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("{LISTEN_FD}=`{value}` is not a file descriptor number; unset it (only a plugin swap sets it)")]
    BadFd { value: String },
    #[error("{LISTEN_FD}={fd} is not a listening TCP socket of this process: {source}; unset it (only a plugin swap sets it)")]
    NotAListener {
        fd: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot keep the listening socket open across the swap: {0}")]
    Fd(#[source] std::io::Error),
    #[error("re-executing `{}` for the plugin swap failed; the server stops (its supervisor restarts it)", exe.display())]
    Exec {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin swaps re-execute the process keeping its listening socket, which needs a Unix system; restart the service to change plugins")]
    Unsupported,
}

/// What the previous image passed on (nothing on a normal start).
#[derive(Debug, Default)]
pub struct Inherited {
    pub listener: Option<std::net::TcpListener>,
    pub history: SwapHistory,
}

/// Reads what a swap passed on and removes it from the environment, so that
/// children (plugin inspections) do not see it. Call before any thread starts.
pub fn take_inherited() -> Result<Inherited, HandoffError> {
    let take = |name: &str| {
        let value = std::env::var(name).ok().filter(|v| !v.is_empty());
        std::env::remove_var(name);
        value
    };
    let history = SwapHistory {
        count: take(SWAPS).and_then(|v| v.parse().ok()).unwrap_or(0),
        last_unix_ms: take(SWAPPED_AT).and_then(|v| v.parse().ok()),
        previous_plugin_path: take(PREVIOUS_PATH).map(PathBuf::from),
        previous_plugin_sha256: take(PREVIOUS_SHA256),
    };
    let listener = match take(LISTEN_FD) {
        None => None,
        Some(value) => {
            let fd = value.trim().parse::<i32>().map_err(|_| HandoffError::BadFd { value: value.clone() })?;
            Some(imp::adopt(fd)?)
        }
    };
    Ok(Inherited { listener, history })
}

/// The listening socket, kept open by this process whatever axum does with its own handle.
pub struct KeptSocket(#[cfg(unix)] std::os::fd::OwnedFd);

impl KeptSocket {
    /// A second descriptor of `listener`'s socket (close-on-exec until the swap).
    pub fn keep(listener: &tokio::net::TcpListener) -> Result<KeptSocket, HandoffError> {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            Ok(KeptSocket(listener.as_fd().try_clone_to_owned().map_err(HandoffError::Fd)?))
        }
        #[cfg(not(unix))]
        {
            let _ = listener;
            Ok(KeptSocket())
        }
    }
}

/// Re-executes this executable with the same arguments and environment plus
/// the socket and the new history; returns only if that failed.
pub fn exec(socket: &KeptSocket, next: &SwapHistory) -> HandoffError {
    imp::exec(socket, next)
}

fn history_env(next: &SwapHistory) -> Vec<(&'static str, String)> {
    let mut env = vec![(SWAPS, next.count.to_string())];
    if let Some(at) = next.last_unix_ms {
        env.push((SWAPPED_AT, at.to_string()));
    }
    if let Some(p) = &next.previous_plugin_path {
        env.push((PREVIOUS_PATH, p.display().to_string()));
    }
    if let Some(s) = &next.previous_plugin_sha256 {
        env.push((PREVIOUS_SHA256, s.clone()));
    }
    env
}

#[cfg(unix)]
mod imp {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;

    use super::{history_env, HandoffError, KeptSocket, SwapHistory, LISTEN_FD};

    fn set_cloexec(fd: i32, on: bool) -> std::io::Result<()> {
        // SAFETY: fcntl on an fd number only reads and sets its flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn is_listening_socket(fd: i32) -> std::io::Result<()> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: value and len are valid for writes of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if value == 0 {
            return Err(std::io::Error::other("the socket is not listening"));
        }
        Ok(())
    }

    pub fn adopt(fd: i32) -> Result<std::net::TcpListener, HandoffError> {
        let not = |source| HandoffError::NotAListener { fd, source };
        // Checked before taking ownership: the number must be an open, listening socket.
        set_cloexec(fd, true).map_err(not)?;
        is_listening_socket(fd).map_err(not)?;
        // SAFETY: the fd is open, ours (inherited across exec for this purpose) and owned by nothing else.
        let listener = std::net::TcpListener::from(unsafe { OwnedFd::from_raw_fd(fd) });
        listener.local_addr().map_err(not)?;
        listener.set_nonblocking(true).map_err(not)?;
        Ok(listener)
    }

    pub fn exec(socket: &KeptSocket, next: &SwapHistory) -> HandoffError {
        let fd = socket.0.as_raw_fd();
        // /proc/self/exe is the running file even if the path was replaced or removed since.
        let exe = if cfg!(target_os = "linux") {
            std::path::PathBuf::from("/proc/self/exe")
        } else {
            match std::env::current_exe() {
                Ok(exe) => exe,
                Err(source) => return HandoffError::Exec { exe: "switchyard".into(), source },
            }
        };
        if let Err(e) = set_cloexec(fd, false) {
            return HandoffError::Fd(e);
        }
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new(&exe);
        if let Some(arg0) = args.next() {
            cmd.arg0(arg0);
        }
        cmd.args(args).env(LISTEN_FD, fd.to_string()).envs(history_env(next));
        let source = cmd.exec();
        let _ = set_cloexec(fd, true);
        HandoffError::Exec { exe, source }
    }
}

#[cfg(not(unix))]
mod imp {
    use super::{HandoffError, KeptSocket, SwapHistory};

    pub fn adopt(_fd: i32) -> Result<std::net::TcpListener, HandoffError> {
        Err(HandoffError::Unsupported)
    }

    pub fn exec(_socket: &KeptSocket, _next: &SwapHistory) -> HandoffError {
        HandoffError::Unsupported
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_adopted_and_anything_else_is_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(listener);
        assert_eq!(imp::adopt(fd).unwrap().local_addr().unwrap(), addr);
        let file = std::fs::File::open("/proc/self/exe").or_else(|_| std::fs::File::open("/")).unwrap();
        let err = imp::adopt(std::os::fd::AsRawFd::as_raw_fd(&file)).unwrap_err().to_string();
        assert!(err.contains("is not a listening TCP socket") && err.contains("unset it"), "{err}");
    }

    #[test]
    fn the_history_travels_as_environment_variables() {
        let env = history_env(&SwapHistory {
            count: 2,
            last_unix_ms: Some(5),
            previous_plugin_path: Some("/p/libbackend_cpu.so".into()),
            previous_plugin_sha256: Some("ab".into()),
        });
        assert!(env.contains(&(SWAPS, "2".into())) && env.contains(&(PREVIOUS_SHA256, "ab".into())), "{env:?}");
    }
}
