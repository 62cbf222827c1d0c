//! SIGINT, SIGTERM and SIGHUP as one request to stop.
//!
//! The listeners are registered when a [`Shutdown`] is made and kept until
//! it is dropped: a signal that arrives while a loop is busy elsewhere is
//! delivered at the next `recv`. (A listener made anew in each turn of a
//! `select!` loop misses signals that arrive between turns, and tokio has
//! by then replaced the default action, so the process would keep running.)

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Listeners for the three stop signals.
#[derive(Debug)]
pub(crate) struct Shutdown {
    listeners: Vec<Signal>,
}

impl Shutdown {
    /// Starts listening now; must be called inside a tokio runtime.
    pub(crate) fn listen() -> Self {
        let listeners = [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ]
        .into_iter()
        .filter_map(|kind| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!("cannot listen for signal {kind:?}: {e}");
                None
            }
        })
        .collect();
        Self { listeners }
    }

    /// Resolves when one of the signals has arrived since listening began
    /// or since the last `recv`. Cancel-safe: a `select!` branch that loses
    /// loses no signal.
    pub(crate) async fn recv(&mut self) {
        if self.listeners.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.listeners.iter_mut().map(|s| Box::pin(s.recv()));
        futures_util::future::select_all(waits).await;
    }
}

/// Resolves at the first stop signal from now on.
pub(crate) async fn shutdown_signal() {
    Shutdown::listen().recv().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_sent_while_nobody_waits_is_not_lost() {
        let mut shutdown = Shutdown::listen();
        // Raised before anyone awaits `recv` (as when a loop is busy).
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tokio::time::timeout(std::time::Duration::from_secs(5), shutdown.recv())
            .await
            .expect("the pending SIGHUP is delivered");
    }
}
