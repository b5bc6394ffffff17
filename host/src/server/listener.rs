//! The server's listener: the bound socket, which stops accepting the moment
//! the phase leaves `Serving`.
//!
//! Why: on a swap the old image answers with `Connection: close` for a
//! grace period and then closes its idle connections. A connection it
//! accepted during that grace and whose request had not been read when the
//! grace ended was closed under the client (a reset). Not accepting at all
//! from the start of the drain leaves new connections in the socket's
//! backlog, which survives the re-exec: the new image serves them.

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the server loop is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Serving,
    /// SIGINT/SIGTERM or a failed load: stop.
    Shutdown,
    /// A validated swap: drain, then re-execute.
    Swap,
}

/// A `TcpListener` that accepts only while the server is serving.
pub struct PhasedListener {
    inner: TcpListener,
    phase: watch::Receiver<Phase>,
}

impl PhasedListener {
    pub fn new(inner: TcpListener, phase: watch::Receiver<Phase>) -> Self {
        PhasedListener { inner, phase }
    }
}

impl axum::serve::Listener for PhasedListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (phase, inner) = (&mut self.phase, &mut self.inner);
        let stopped = async move {
            // The guard wait_for returns is not Send: drop it before waiting on.
            let _ = phase.wait_for(|p| *p != Phase::Serving).await.map(drop);
        };
        tokio::select! {
            biased;
            _ = stopped => std::future::pending().await,
            accepted = axum::serve::Listener::accept(inner) => accepted,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
