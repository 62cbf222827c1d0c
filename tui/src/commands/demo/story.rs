//! The galactic FHIR story as steps, and how each step is played on the
//! demo's stage: requests sent with curl from inside the pods, policies
//! from policies/galactic-fhir enforced in the kernel, the identity
//! provider's outage switched on and off.
//!
//! The steps are the same for every way the demo is shown (text, headless,
//! dashboard); only how their captions and outcomes are presented differs,
//! so CI's headless run checks exactly the story a person watches.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use holonet_agent::loader::TcProbe;
use holonet_lab::{Pod, fhir::FHIR_BASE};

use super::{FHIR_PORT, NODE, Published, Stage, background::Background};

/// What a request step should end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    /// This HTTP status.
    Status(&'static str),
    /// Dropped by the datapath (the client times out).
    Dropped,
}

impl Expect {
    /// How curl's outcome reads when it matches (`201`, `dropped`).
    fn word(self) -> &'static str {
        match self {
            Expect::Status(code) => code,
            Expect::Dropped => "dropped",
        }
    }
}

/// One step of the story.
pub(super) enum Step {
    /// Someone sends a request.
    Request {
        caption: &'static str,
        from: usize,
        method: &'static str,
        patient: &'static str,
        expect: Expect,
    },
    /// The operator applies a policy file from policies/galactic-fhir.
    Apply {
        caption: &'static str,
        file: &'static str,
        yaml: &'static str,
    },
    /// The identity provider goes down (`true`) or the server is opened.
    Outage { caption: &'static str, down: bool },
    /// The droids start polling and the payer starts retrying, and keep
    /// at it until the demo ends.
    Background { caption: &'static str },
}

impl Step {
    /// The step in the story's words.
    pub(super) fn caption(&self) -> &'static str {
        match self {
            Step::Request { caption, .. }
            | Step::Apply { caption, .. }
            | Step::Outage { caption, .. }
            | Step::Background { caption } => caption,
        }
    }

    /// The line the text output starts the step with.
    pub(super) fn announce(&self) -> String {
        match self {
            Step::Request {
                caption,
                from,
                method,
                patient,
                ..
            } => format!(
                "\n--- {caption}: {method} {FHIR_BASE}/Patient/{patient} from {}",
                POD_NAMES[*from]
            ),
            Step::Apply { caption, file, .. } => {
                format!("\n=== {caption}: policies/galactic-fhir/{file}")
            }
            Step::Outage { caption, .. } | Step::Background { caption } => {
                format!("\n=== {caption}")
            }
        }
    }
}

/// Indices into the demo's pods (and [`POD_NAMES`]).
pub(super) const SERVER: usize = 0;
pub(super) const EMPIRE: usize = 1;
pub(super) const PAYER: usize = 2;
pub(super) const KUBE_DNS: usize = 3;
pub(super) const DROIDS: [usize; 3] = [4, 5, 6];

/// The pods' names, as in policies/endpoints/galactic-fhir.yaml.
pub(super) const POD_NAMES: [&str; 7] = [
    "coruscanthealth",
    "grandmedicalfacility",
    "payer",
    "kube-dns",
    "medicaldroid-fx-6",
    "medicaldroid-dd-13",
    "medicaldroid-2-1b",
];

/// Each pod's namespace and labels (a YAML flow mapping), in the order of
/// [`POD_NAMES`]. The droids are `org: empire` like the care team, so the
/// policies treat them the same way and their verdicts follow the story.
pub(super) const POD_IDENTITIES: [(&str, &str); 7] = [
    ("galactic-fhir", "{app: coruscanthealth}"),
    ("galactic-fhir", "{app: grandmedicalfacility, org: empire}"),
    ("galactic-fhir", "{app: galactic-payer, org: payer}"),
    ("kube-system", "{k8s-app: kube-dns}"),
    (
        "galactic-fhir",
        "{app: medicaldroid, model: fx-6, org: empire}",
    ),
    (
        "galactic-fhir",
        "{app: medicaldroid, model: dd-13, org: empire}",
    ),
    (
        "galactic-fhir",
        "{app: medicaldroid, model: 2-1b, org: empire}",
    ),
];

const DENY_ALL: &str =
    include_str!("../../../../policies/galactic-fhir/00-denyall-coruscanthealth.yaml");
const EMPIRE_L7: &str = include_str!("../../../../policies/galactic-fhir/10-l7-visibility.yaml");
const PAYER_L7: &str =
    include_str!("../../../../policies/galactic-fhir/20-l7-visibility-payer.yaml");

/// The story, step by step, as the blog tells it.
pub(super) const STORY: [Step; 15] = [
    Step::Request {
        caption: "Palpatine's registration desk (org: empire) admits Darth Vader",
        from: EMPIRE,
        method: "PUT",
        patient: "DarthVader",
        expect: Expect::Status("201"),
    },
    Step::Background {
        caption: "the medical droids FX-6, DD-13 and 2-1B start polling Vader's record; the payer keeps retrying",
    },
    Step::Outage {
        caption: "Galactic IT outage: the identity provider is down, the SMART-enabled server wants tokens",
        down: true,
    },
    Step::Request {
        caption: "the care team tries to read Vader's record",
        from: EMPIRE,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Status("401"),
    },
    Step::Apply {
        caption: "deny all traffic cluster-wide, except DNS (CiliumClusterwideNetworkPolicy)",
        file: "00-denyall-coruscanthealth.yaml",
        yaml: DENY_ALL,
    },
    Step::Request {
        caption: "the care team tries again",
        from: EMPIRE,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Dropped,
    },
    Step::Outage {
        caption: "the FHIR endpoint is opened (SMART checks off): Cilium now guards the routes",
        down: false,
    },
    Step::Apply {
        caption: "allow org: empire GET and HEAD on Vader's record (CiliumNetworkPolicy l7-visibility)",
        file: "10-l7-visibility.yaml",
        yaml: EMPIRE_L7,
    },
    Step::Request {
        caption: "the care team reads Vader's record",
        from: EMPIRE,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Status("200"),
    },
    Step::Request {
        caption: "the care team checks the record",
        from: EMPIRE,
        method: "HEAD",
        patient: "DarthVader",
        expect: Expect::Status("200"),
    },
    Step::Request {
        caption: "...except the payer (org: payer) is getting dropped",
        from: PAYER,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Dropped,
    },
    Step::Apply {
        caption: "allow org: payer the same route (CiliumNetworkPolicy l7-visibility-payer)",
        file: "20-l7-visibility-payer.yaml",
        yaml: PAYER_L7,
    },
    Step::Request {
        caption: "that did not quite cut it: the payer asks for another patient",
        from: PAYER,
        method: "GET",
        patient: "Anakin",
        expect: Expect::Status("403"),
    },
    Step::Request {
        caption: "the payer is told to ask for the correct record",
        from: PAYER,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Status("200"),
    },
    Step::Request {
        caption: "...and Anakin Vader gets his legs: the care team reads the record once more",
        from: EMPIRE,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Status("200"),
    },
];

/// A request the story made, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Checked {
    /// `GET DarthVader from payer`.
    pub(super) what: String,
    /// What the story says (`201`, `dropped`).
    pub(super) expected: &'static str,
    /// What happened (`201`, `dropped`, `failed: …`).
    pub(super) observed: String,
}

impl Checked {
    /// Whether it ended as the story says.
    pub(super) fn ok(&self) -> bool {
        self.expected == self.observed
    }

    /// `HTTP 401` or `no answer: dropped by holonet`.
    pub(super) fn shown(&self) -> String {
        if self.observed == "dropped" {
            "no answer: dropped by holonet".to_string()
        } else if self.observed.starts_with("failed") {
            self.observed.clone()
        } else {
            format!("HTTP {}", self.observed)
        }
    }
}

/// What playing a step led to.
#[derive(Debug)]
pub(super) enum Played {
    /// Nothing to report.
    Quiet,
    /// A line about what changed (policies enforced).
    Note(String),
    /// A request and its outcome.
    Request(Checked),
}

/// Sends one request from `client` to the FHIR server, by name through
/// kube-dns as in the blog; returns the HTTP status, or `dropped` when the
/// connection or request got no answer (curl timed out). The curl process
/// is killed if the future is dropped.
pub(super) async fn curl(
    client: &Pod,
    method: &str,
    patient: &str,
    body: &Path,
) -> anyhow::Result<String> {
    let url = format!(
        "http://{}:{FHIR_PORT}{FHIR_BASE}/Patient/{patient}",
        POD_NAMES[SERVER]
    );
    let mut args = holonet_lab::curl_status_args("2", &[]);
    let data = format!("@{}", body.display());
    match method {
        "HEAD" => args.push("--head"),
        "PUT" => args.extend([
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/fhir+json",
            "--data-binary",
            &data,
        ]),
        other => args.extend(["-X", other]),
    }
    args.push(&url);
    let output = tokio::process::Command::from(client.command("curl", &args))
        .kill_on_drop(true)
        .output()
        .await
        .context("running curl in a pod")?;
    let code = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if output.status.success() {
        Ok(code)
    } else if output.status.code() == Some(28) {
        Ok("dropped".to_string())
    } else {
        Ok(format!(
            "failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Enforces the policy directory in the kernel, and publishes it for the
/// flows' policy names and the API's explanations.
fn apply_policies(
    probe: &mut TcProbe,
    policy_dir: &Path,
    endpoints_file: &Path,
    published: &Published,
) -> anyhow::Result<String> {
    let config =
        holonet_agent::datapath::config::load(&[policy_dir.to_path_buf()], endpoints_file, NODE)?;
    let unattached = probe.apply_config(&config)?;
    if !unattached.is_empty() {
        bail!("no interface found for {}", unattached.join(", "));
    }
    published.publish(&config.resolved);
    Ok(format!(
        "{} policy object(s) enforced in the kernel",
        config.policies
    ))
}

impl Stage {
    /// Plays one step of the story.
    pub(super) async fn play(&mut self, step: &Step) -> anyhow::Result<Played> {
        match step {
            Step::Outage { down, .. } => {
                if *down {
                    std::fs::write(&self.token_file, "down\n")?;
                } else {
                    std::fs::remove_file(&self.token_file)?;
                }
                Ok(Played::Quiet)
            }
            Step::Apply { file, yaml, .. } => {
                std::fs::write(self.policy_dir.join(file), yaml)?;
                let summary = apply_policies(
                    &mut self.probe,
                    &self.policy_dir,
                    &self.endpoints_file,
                    &self.published,
                )
                .with_context(|| format!("applying {file}"))?;
                Ok(Played::Note(summary))
            }
            Step::Background { .. } => {
                let droids = DROIDS.map(|i| self.pods[i].clone());
                self.background = Some(Background::start(
                    &droids,
                    &self.pods[PAYER],
                    self.vader.clone(),
                ));
                Ok(Played::Note(format!(
                    "{} poll every few seconds, {} retries",
                    DROIDS.map(|i| POD_NAMES[i]).join(", "),
                    POD_NAMES[PAYER]
                )))
            }
            Step::Request {
                from,
                method,
                patient,
                expect,
                ..
            } => {
                let observed = curl(&self.pods[*from], method, patient, &self.vader).await?;
                // Let the flows of the request reach the store (and the
                // printer) before the outcome is told.
                tokio::time::sleep(Duration::from_millis(150)).await;
                if *from == PAYER && observed == "200" {
                    // The payer learned which record to ask for.
                    if let Some(b) = &self.background {
                        b.payer_asks_for(patient);
                    }
                }
                Ok(Played::Request(Checked {
                    what: format!("{method} {patient} from {}", POD_NAMES[*from]),
                    expected: expect.word(),
                    observed,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_are_kubernetes_names_and_fit_the_lab() {
        for name in POD_NAMES {
            assert!(name.len() <= 20, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}"
            );
            assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
        }
        assert_eq!(POD_NAMES.len(), POD_IDENTITIES.len());
        for i in DROIDS {
            assert!(POD_IDENTITIES[i].1.contains("org: empire"), "{i}");
        }
    }

    #[test]
    fn the_story_checks_every_request_and_names_who_sent_it() {
        let requests: Vec<&Step> = STORY
            .iter()
            .filter(|s| matches!(s, Step::Request { .. }))
            .collect();
        assert_eq!(requests.len(), 9);
        assert!(
            STORY[0]
                .announce()
                .contains("PUT /intersystems/fhir/r5/Patient/DarthVader from grandmedicalfacility")
        );
        assert!(
            STORY[4]
                .announce()
                .ends_with("policies/galactic-fhir/00-denyall-coruscanthealth.yaml")
        );
        // The background traffic starts once Vader is registered, before
        // any expectation depends on a policy.
        assert!(matches!(STORY[1], Step::Background { .. }));
        let c = Checked {
            what: "GET Anakin from payer".into(),
            expected: "403",
            observed: "403".into(),
        };
        assert!(c.ok());
        assert_eq!(c.shown(), "HTTP 403");
        let d = Checked {
            observed: "dropped".into(),
            ..c
        };
        assert!(!d.ok());
        assert_eq!(d.shown(), "no answer: dropped by holonet");
    }
}
