//! A story told over the live dashboard: `holonet demo` plays the galactic
//! FHIR incident step by step while the flows stream in, and the dashboard
//! shows where the story is (a caption banner under the header) and takes
//! `n` to move on without waiting for the timer.
//!
//! The driver owns the story and sends the whole [`Story`] state in a
//! [`super::app::Msg::Story`] whenever it changes, so the model stays a
//! plain copy of what the driver decided and the banner is a pure function
//! of it.

/// Where the story is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Story {
    /// The step shown, counted from 1 (0 before the first one starts).
    pub(crate) step: usize,
    /// How many steps the story has.
    pub(crate) total: usize,
    /// What this step is about, in the story's words.
    pub(crate) caption: String,
    /// What the step led to, once known (a request's answer, a policy
    /// enforced).
    pub(crate) outcome: Option<Outcome>,
    /// What happens next.
    pub(crate) phase: Phase,
}

/// The result of a step, for the banner's second line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Plain words (`GET …/DarthVader from payer: HTTP 403, as the story says`).
    pub(crate) text: String,
    /// Whether it ended as the story says (false is shown as an error).
    pub(crate) as_expected: bool,
}

/// What the story is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The step is being played (a request in flight, a policy loading).
    Playing,
    /// The step is done; the next one starts in this many seconds, or on `n`.
    Waiting {
        /// Seconds left on the timer.
        seconds: u64,
    },
    /// Every step was played; background traffic keeps flowing until `q`.
    Over {
        /// Requests that ended as the story says.
        ok: usize,
        /// Requests the story made.
        requests: usize,
    },
    /// A step could not be played (the error says why); `q` cleans up.
    Failed(String),
}

impl Story {
    /// Whether `n` still has a step to move to.
    pub(crate) fn can_advance(&self) -> bool {
        matches!(self.phase, Phase::Playing | Phase::Waiting { .. })
    }

    /// The banner's first line: step, caption and what comes next.
    pub(crate) fn headline(&self) -> String {
        match &self.phase {
            Phase::Over { ok, requests } => format!(
                "■ the story is over: {ok}/{requests} requests ended as the story says; \
                 background traffic keeps flowing. q quits and cleans up"
            ),
            Phase::Failed(e) => format!("✗ the demo stopped: {e}. q quits and cleans up"),
            _ => format!("step {}/{}: {}", self.step, self.total, self.caption),
        }
    }

    /// The right-hand hint on the first line.
    pub(crate) fn hint(&self) -> Option<String> {
        match self.phase {
            Phase::Playing => Some("playing…".to_owned()),
            Phase::Waiting { seconds } if self.step < self.total => {
                Some(format!("next in {seconds}s (n: now)"))
            }
            Phase::Waiting { seconds } => Some(format!("ending in {seconds}s (n: now)")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn story(phase: Phase) -> Story {
        Story {
            step: 4,
            total: 14,
            caption: "deny all traffic cluster-wide, except DNS".to_owned(),
            outcome: None,
            phase,
        }
    }

    #[test]
    fn the_headline_says_where_the_story_is() {
        let s = story(Phase::Waiting { seconds: 5 });
        assert_eq!(
            s.headline(),
            "step 4/14: deny all traffic cluster-wide, except DNS"
        );
        assert_eq!(s.hint().as_deref(), Some("next in 5s (n: now)"));
        assert!(s.can_advance());
        let over = story(Phase::Over {
            ok: 9,
            requests: 10,
        });
        assert!(
            over.headline().contains("9/10 requests"),
            "{}",
            over.headline()
        );
        assert_eq!(over.hint(), None);
        assert!(!over.can_advance());
        let failed = story(Phase::Failed("applying x.yaml: boom".to_owned()));
        assert!(failed.headline().contains("boom"));
        assert!(!failed.can_advance());
    }

    #[test]
    fn the_last_step_counts_down_to_the_end() {
        let mut s = story(Phase::Waiting { seconds: 2 });
        s.step = 14;
        assert_eq!(s.hint().as_deref(), Some("ending in 2s (n: now)"));
    }
}
