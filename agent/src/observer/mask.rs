//! GetFlows field masks: keep only the requested fields of each flow.
//!
//! `hubble observe` sends a field mask for its compact, dict and table
//! output, so masking is on the hot path of every CLI session. Masks made of
//! top-level fields and endpoint sub-fields (which covers the CLI's default
//! mask) are applied by copying fields directly; any other path is applied
//! through the flow's protojson form, which is slower but exact.

use holonet_proto::flow::{Endpoint, Flow};

/// A mask that cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("field_mask: `{path}` is not a field of flow.Flow")]
pub struct MaskError {
    /// The offending path.
    pub path: String,
}

/// Top-level fields of `flow.Flow`, by proto name.
const TOP_LEVEL: &[&str] = &[
    "time",
    "uuid",
    "emitter",
    "verdict",
    "drop_reason",
    "auth_type",
    "ethernet",
    "IP",
    "l4",
    "source",
    "destination",
    "Type",
    "node_name",
    "node_labels",
    "source_names",
    "destination_names",
    "l7",
    "reply",
    "event_type",
    "source_service",
    "destination_service",
    "traffic_direction",
    "policy_match_type",
    "trace_observation_point",
    "trace_reason",
    "file",
    "ip_trace_id",
    "drop_reason_desc",
    "is_reply",
    "debug_capture_point",
    "interface",
    "proxy_port",
    "trace_context",
    "sock_xlate_point",
    "socket_cookie",
    "cgroup_id",
    "Summary",
    "egress_allowed_by",
    "ingress_allowed_by",
    "egress_denied_by",
    "ingress_denied_by",
    "policy_log",
    "aggregate",
    "holonet_source_process",
    "holonet_destination_process",
];

const ENDPOINT_FIELDS: &[&str] = &[
    "ID",
    "identity",
    "cluster_name",
    "namespace",
    "labels",
    "pod_name",
    "workloads",
];

/// A validated field mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldMask {
    /// No mask: every field.
    All,
    /// Only these paths.
    Paths(Vec<String>),
}

impl FieldMask {
    /// Validates `paths` (an empty list means "all fields").
    pub fn new(paths: &[String]) -> Result<Self, MaskError> {
        if paths.is_empty() {
            return Ok(Self::All);
        }
        for path in paths {
            let mut parts = path.split('.');
            let top = parts.next().unwrap_or_default();
            if !TOP_LEVEL.contains(&top) {
                return Err(MaskError { path: path.clone() });
            }
            if matches!(top, "source" | "destination") {
                if let Some(sub) = parts.next() {
                    if !ENDPOINT_FIELDS.contains(&sub) || parts.next().is_some() {
                        return Err(MaskError { path: path.clone() });
                    }
                }
            }
        }
        Ok(Self::Paths(paths.to_vec()))
    }

    /// The flow with only the masked fields set.
    pub fn apply(&self, flow: &Flow) -> Flow {
        let Self::Paths(paths) = self else {
            return flow.clone();
        };
        let mut out = Flow::default();
        let mut json_paths = Vec::new();
        for path in paths {
            match path.split_once('.') {
                None => copy_top_level(&mut out, flow, path),
                Some(("source", field)) => {
                    copy_endpoint_field(
                        out.source.get_or_insert_with(Default::default),
                        flow.source.as_ref(),
                        field,
                    );
                }
                Some(("destination", field)) => copy_endpoint_field(
                    out.destination.get_or_insert_with(Default::default),
                    flow.destination.as_ref(),
                    field,
                ),
                Some(_) => json_paths.push(path.as_str()),
            }
        }
        if !json_paths.is_empty() {
            merge_json_paths(&mut out, flow, &json_paths);
        }
        out
    }
}

fn copy_endpoint_field(out: &mut Endpoint, from: Option<&Endpoint>, field: &str) {
    let Some(from) = from else { return };
    match field {
        "ID" => out.id = from.id,
        "identity" => out.identity = from.identity,
        "cluster_name" => out.cluster_name.clone_from(&from.cluster_name),
        "namespace" => out.namespace.clone_from(&from.namespace),
        "labels" => out.labels.clone_from(&from.labels),
        "pod_name" => out.pod_name.clone_from(&from.pod_name),
        "workloads" => out.workloads.clone_from(&from.workloads),
        _ => {}
    }
}

fn copy_top_level(out: &mut Flow, from: &Flow, field: &str) {
    match field {
        "time" => out.time = from.time,
        "uuid" => out.uuid.clone_from(&from.uuid),
        "emitter" => out.emitter.clone_from(&from.emitter),
        "verdict" => out.verdict = from.verdict,
        "drop_reason" => out.drop_reason = from.drop_reason,
        "auth_type" => out.auth_type = from.auth_type,
        "ethernet" => out.ethernet.clone_from(&from.ethernet),
        "IP" => out.ip.clone_from(&from.ip),
        "l4" => out.l4.clone_from(&from.l4),
        "source" => out.source.clone_from(&from.source),
        "destination" => out.destination.clone_from(&from.destination),
        "Type" => out.r#type = from.r#type,
        "node_name" => out.node_name.clone_from(&from.node_name),
        "node_labels" => out.node_labels.clone_from(&from.node_labels),
        "source_names" => out.source_names.clone_from(&from.source_names),
        "destination_names" => out.destination_names.clone_from(&from.destination_names),
        "l7" => out.l7.clone_from(&from.l7),
        "reply" => out.reply = from.reply,
        "event_type" => out.event_type = from.event_type,
        "source_service" => out.source_service.clone_from(&from.source_service),
        "destination_service" => out
            .destination_service
            .clone_from(&from.destination_service),
        "traffic_direction" => out.traffic_direction = from.traffic_direction,
        "policy_match_type" => out.policy_match_type = from.policy_match_type,
        "trace_observation_point" => out.trace_observation_point = from.trace_observation_point,
        "trace_reason" => out.trace_reason = from.trace_reason,
        "file" => out.file.clone_from(&from.file),
        "ip_trace_id" => out.ip_trace_id = from.ip_trace_id,
        "drop_reason_desc" => out.drop_reason_desc = from.drop_reason_desc,
        "is_reply" => out.is_reply = from.is_reply,
        "debug_capture_point" => out.debug_capture_point = from.debug_capture_point,
        "interface" => out.interface.clone_from(&from.interface),
        "proxy_port" => out.proxy_port = from.proxy_port,
        "trace_context" => out.trace_context.clone_from(&from.trace_context),
        "sock_xlate_point" => out.sock_xlate_point = from.sock_xlate_point,
        "socket_cookie" => out.socket_cookie = from.socket_cookie,
        "cgroup_id" => out.cgroup_id = from.cgroup_id,
        "Summary" => out.summary.clone_from(&from.summary),
        "egress_allowed_by" => out.egress_allowed_by.clone_from(&from.egress_allowed_by),
        "ingress_allowed_by" => out.ingress_allowed_by.clone_from(&from.ingress_allowed_by),
        "egress_denied_by" => out.egress_denied_by.clone_from(&from.egress_denied_by),
        "ingress_denied_by" => out.ingress_denied_by.clone_from(&from.ingress_denied_by),
        "policy_log" => out.policy_log.clone_from(&from.policy_log),
        "aggregate" => out.aggregate = from.aggregate,
        "holonet_source_process" => {
            out.holonet_source_process
                .clone_from(&from.holonet_source_process);
        }
        "holonet_destination_process" => {
            out.holonet_destination_process
                .clone_from(&from.holonet_destination_process);
        }
        _ => {}
    }
}

/// Copies nested paths (e.g. `l7.http.code`) through the protojson form.
fn merge_json_paths(out: &mut Flow, from: &Flow, paths: &[&str]) {
    let (Ok(source), Ok(mut target)) = (serde_json::to_value(from), serde_json::to_value(&*out))
    else {
        return;
    };
    for path in paths {
        let parts: Vec<&str> = path.split('.').collect();
        let mut value = &source;
        let mut found = true;
        for part in &parts {
            match value.get(part) {
                Some(v) => value = v,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let mut slot = &mut target;
        for part in &parts[..parts.len() - 1] {
            if !slot.get(part).is_some_and(serde_json::Value::is_object) {
                slot[*part] = serde_json::Value::Object(serde_json::Map::new());
            }
            slot = &mut slot[*part];
        }
        slot[parts[parts.len() - 1]] = value.clone();
    }
    if let Ok(merged) = serde_json::from_value(target) {
        *out = merged;
    }
}

#[cfg(test)]
mod tests {
    use holonet_proto::flow::{Http, Layer7, layer7};

    use super::*;

    fn sample() -> Flow {
        Flow {
            uuid: "u".into(),
            node_name: "node".into(),
            summary: "s".into(),
            source: Some(Endpoint {
                id: 7,
                identity: 1234,
                namespace: "ns".into(),
                pod_name: "pod".into(),
                labels: vec!["k8s:org=payer".into()],
                ..Default::default()
            }),
            l7: Some(Layer7 {
                latency_ns: 9,
                record: Some(layer7::Record::Http(Http {
                    code: 403,
                    method: "GET".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn empty_mask_keeps_everything() {
        let mask = FieldMask::new(&[]).unwrap();
        assert_eq!(mask.apply(&sample()), sample());
    }

    #[test]
    fn top_level_and_endpoint_paths_are_copied() {
        let mask = FieldMask::new(&[
            "node_name".to_string(),
            "source.pod_name".to_string(),
            "source.identity".to_string(),
        ])
        .unwrap();
        let out = mask.apply(&sample());
        assert_eq!(out.node_name, "node");
        assert_eq!(out.uuid, "");
        assert_eq!(out.summary, "");
        let src = out.source.expect("source kept");
        assert_eq!(
            (src.pod_name.as_str(), src.identity, src.id),
            ("pod", 1234, 0)
        );
        assert!(src.labels.is_empty());
        assert!(out.l7.is_none());
    }

    #[test]
    fn holonet_process_fields_can_be_masked() {
        let mut flow = sample();
        flow.holonet_source_process = Some(holonet_proto::flow::HolonetProcess {
            pid: 42,
            command: "curl".into(),
        });
        flow.holonet_destination_process = flow.holonet_source_process.clone();
        let mask = FieldMask::new(&["holonet_source_process".to_string()]).unwrap();
        let out = mask.apply(&flow);
        assert_eq!(out.holonet_source_process, flow.holonet_source_process);
        assert_eq!(out.holonet_destination_process, None);
        assert_eq!(out.node_name, "");
    }

    #[test]
    fn nested_paths_go_through_json() {
        let mask = FieldMask::new(&["l7.http.code".to_string()]).unwrap();
        let out = mask.apply(&sample());
        let l7 = out.l7.expect("l7 kept");
        assert_eq!(l7.latency_ns, 0);
        let Some(layer7::Record::Http(http)) = l7.record else {
            panic!("http kept");
        };
        assert_eq!((http.code, http.method.as_str()), (403, ""));
    }

    #[test]
    fn unknown_paths_are_rejected() {
        assert_eq!(
            FieldMask::new(&["nope".to_string()]),
            Err(MaskError {
                path: "nope".into()
            })
        );
        assert!(FieldMask::new(&["source.nope".to_string()]).is_err());
        assert!(FieldMask::new(&["source.pod_name.x".to_string()]).is_err());
    }
}
