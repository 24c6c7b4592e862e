//! The listener: accepts connections and serves each on its own task until told to
//! stop.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::conn;
use crate::session::Shared;

/// A running RESP listener.
pub struct RespServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl RespServer {
    /// Binds `listen` and serves every connection through `shared`, over TLS when an
    /// acceptor is given.
    pub async fn start(
        listen: SocketAddr,
        shared: Shared,
        tls: Option<TlsAcceptor>,
    ) -> std::io::Result<RespServer> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let shared = Arc::new(shared);
        let kept = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((sock, _)) => {
                            let _ = sock.set_nodelay(true);
                            let shared = shared.clone();
                            match tls.clone() {
                                None => drop(tokio::spawn(conn::serve(shared, sock))),
                                Some(tls) => drop(tokio::spawn(async move {
                                    match tls.accept(sock).await {
                                        Ok(s) => conn::serve(shared, s).await,
                                        Err(e) => tracing::debug!("resp: TLS handshake failed: {e}"),
                                    }
                                })),
                            }
                        }
                        Err(e) => tracing::warn!("resp: accept failed: {e}"),
                    },
                    _ = stopped.changed() => return,
                }
            }
        });
        Ok(RespServer {
            addr,
            stop,
            task,
            shared: kept,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and closes the open ones once each has answered
    /// what it read; waits for them up to `drain`.
    pub async fn stop(self, drain: std::time::Duration) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.shared.stop();
        let deadline = tokio::time::Instant::now() + drain;
        while self.shared.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
