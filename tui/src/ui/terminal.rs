//! Owning the terminal: raw mode, the alternate screen and mouse capture
//! are switched on by [`TerminalGuard::enter`] and always switched off
//! again — when the guard drops (normal exit, error, `?`), from the panic
//! hook, and on SIGTERM/SIGHUP/SIGINT (turned into a quit message by the
//! event loop, so the guard drops normally).

use std::io::{self, Write};

use crossterm::{
    cursor::{Hide, Show},
    event::{DisableMouseCapture, EnableMouseCapture},
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};

/// Restores the terminal when dropped.
#[derive(Debug)]
pub(crate) struct TerminalGuard {
    _private: (),
}

/// Puts the terminal back: cooked mode, main screen, cursor, no mouse
/// capture. Safe to call more than once.
pub(crate) fn restore() {
    let _ = disable_raw_mode();
    let mut out = io::stdout();
    let _ = execute!(out, DisableMouseCapture, LeaveAlternateScreen, Show);
    let _ = out.flush();
}

impl TerminalGuard {
    /// Takes over the terminal and installs the panic hook that gives it
    /// back before the panic message is printed.
    pub(crate) fn enter() -> io::Result<Self> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            log::error!(
                "panic: {info}\n{}",
                std::backtrace::Backtrace::force_capture()
            );
            previous(info);
        }));
        enable_raw_mode()?;
        let guard = Self { _private: () };
        execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture, Hide)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}
