//! Styles. Hubble's palette (FORWARDED green, DROPPED red, AUDIT yellow)
//! in the 16 named ANSI colours so the user's terminal theme applies, and
//! nothing that depends on colour alone: verdicts are always spelled out,
//! the selection is REVERSED, errors are prefixed with a glyph. NO_COLOR
//! (non-empty) and TERM=dumb turn colour off.

use holonet_proto::flow::Verdict;
use ratatui::style::{Color, Modifier, Style};

/// Whether to use colour, and the styles that follow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Theme {
    /// Colours on.
    pub(crate) color: bool,
}

impl Theme {
    /// Colour decided from `--color auto|always|never` and the environment.
    pub(crate) fn from_env(when: &str) -> Self {
        let color = match when {
            "always" => true,
            "never" => false,
            _ => {
                let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
                let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
                !no_color && !dumb
            }
        };
        Self { color }
    }

    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    /// A verdict's style (DROPPED is also bold, so it stands out without colour).
    pub(crate) fn verdict(self, v: i32) -> Style {
        match Verdict::try_from(v) {
            Ok(Verdict::Forwarded) => self.fg(Color::Green),
            Ok(Verdict::Dropped) => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Ok(Verdict::Audit | Verdict::Traced | Verdict::Translated) => self.fg(Color::Yellow),
            Ok(Verdict::Error) => self.fg(Color::Magenta).add_modifier(Modifier::BOLD),
            Ok(Verdict::Redirected) => self.fg(Color::Cyan),
            _ => Style::new(),
        }
    }

    /// Panel titles and the app name.
    pub(crate) fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Key names in the footer and help.
    pub(crate) fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Secondary text.
    pub(crate) fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    /// Errors (also prefixed with `✗` or `!` by the caller).
    pub(crate) fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Good news (valid filter).
    pub(crate) fn ok(self) -> Style {
        self.fg(Color::Green)
    }

    /// Warnings (lost events, paused).
    pub(crate) fn warn(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// The selected row: reversed, visible on any palette and without colour.
    pub(crate) fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// Column headers.
    pub(crate) fn header(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
}
