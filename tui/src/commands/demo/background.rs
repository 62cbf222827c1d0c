//! Background traffic: what keeps the dashboard looking like a real
//! incident rather than a slideshow. The medical droids FX-6, DD-13 and
//! 2-1B (`org: empire`, like the care team) poll Vader's record every few
//! seconds, and the payer's claims system keeps retrying its lookup of
//! patient `Anakin` until the story tells it which record to ask for.
//!
//! Only the story's own requests are checked against the story; these run
//! alongside on their own connections and source ports, from pods whose
//! labels the policies treat like the story's clients, so their verdicts
//! follow each step (401 in the outage, DROPPED after the deny-all,
//! FORWARDED once `l7-visibility` allows the empire) without ever changing
//! how a story request ends.

use std::{path::PathBuf, time::Duration};

use holonet_lab::Pod;
use tokio::{sync::watch, task::JoinHandle};

use super::story::curl;

/// Who polls what, how often, and how long after the start the first time
/// (staggered so the droids do not fire together).
const DROID_POLLS: [(&str, Duration, Duration); 3] = [
    ("GET", Duration::from_secs(3), Duration::from_millis(500)),
    ("HEAD", Duration::from_secs(4), Duration::from_millis(1500)),
    ("GET", Duration::from_secs(5), Duration::from_millis(2500)),
];
/// How often the payer retries.
const PAYER_RETRY: Duration = Duration::from_secs(4);
/// The record the payer's claims system asks for until told otherwise.
const PAYER_FIRST_ASKS_FOR: &str = "Anakin";

/// The background clients; they stop (and their curls are killed) when
/// this is dropped.
#[derive(Debug)]
pub(super) struct Background {
    tasks: Vec<JoinHandle<()>>,
    payer_patient: watch::Sender<String>,
}

impl Background {
    /// Starts the droids' polling and the payer's retries.
    pub(super) fn start(droids: &[Pod; 3], payer: &Pod, body: PathBuf) -> Self {
        let (payer_patient, patient) = watch::channel(PAYER_FIRST_ASKS_FOR.to_owned());
        let mut tasks = Vec::new();
        for (droid, (method, every, first)) in droids.iter().zip(DROID_POLLS) {
            let (pod, body) = (droid.clone(), body.clone());
            let (_, fixed) = watch::channel("DarthVader".to_owned());
            tasks.push(tokio::spawn(poll(pod, method, fixed, every, first, body)));
        }
        tasks.push(tokio::spawn(poll(
            payer.clone(),
            "GET",
            patient,
            PAYER_RETRY,
            Duration::from_secs(1),
            body,
        )));
        Self {
            tasks,
            payer_patient,
        }
    }

    /// From now on the payer asks for `patient`.
    pub(super) fn payer_asks_for(&self, patient: &str) {
        self.payer_patient.send_replace(patient.to_owned());
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Sends `method` on the record `patient` names, every `every`, forever.
async fn poll(
    pod: Pod,
    method: &'static str,
    patient: watch::Receiver<String>,
    every: Duration,
    first: Duration,
    body: PathBuf,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let p = patient.borrow().clone();
        match curl(&pod, method, &p, &body).await {
            Ok(outcome) => log::debug!("{} {method} {p}: {outcome}", pod.name),
            Err(e) => log::warn!("{} {method} {p}: {e:#}", pod.name),
        }
    }
}
