//! The JSON schema podc validates against, generated from [`crate::model`].
//!
//! The committed `schema/pod.schema.json` is this output; a test fails when
//! the two drift apart. Editors use it through a
//! `# yaml-language-server: $schema=...` line, and `podc schema` prints it.

use crate::model::{ConfigMap, Pod, Secret};
use serde_json::{json, Value};

/// The kinds podc reads, with the names of their schema definitions.
pub const KINDS: &[&str] = &["Pod", "ConfigMap", "Secret"];

/// The whole schema: definitions for each kind, dispatched on `kind`.
pub fn generate() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12();
    let mut generator = settings.into_generator();
    generator.subschema_for::<Pod>();
    generator.subschema_for::<ConfigMap>();
    generator.subschema_for::<Secret>();
    let mut defs = serde_json::Map::new();
    for (k, v) in generator.take_definitions(true) {
        defs.insert(k, v);
    }
    // `kind` is a plain string in the types (so serde can report it), but
    // each definition accepts exactly its own kind.
    for kind in KINDS {
        if let Some(props) = defs
            .get_mut(*kind)
            .and_then(|d| d.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            props.insert("kind".into(), json!({ "const": kind }));
        }
    }
    let dispatch: Vec<Value> = KINDS
        .iter()
        .map(|k| {
            json!({
                "if": { "properties": { "kind": { "const": k } }, "required": ["kind"] },
                "then": { "$ref": format!("#/$defs/{k}") }
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "podc manifest (Kubernetes v1 Pod, ConfigMap or Secret)",
        "description": "The part of the Kubernetes v1 API that podc runs. Generated from podc's Rust types; do not edit.",
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {
            "apiVersion": { "const": "v1" },
            "kind": { "enum": KINDS }
        },
        "allOf": dispatch,
        "$defs": defs,
    })
}

/// The committed schema text: pretty JSON with a trailing newline.
pub fn render() -> String {
    let mut s = serde_json::to_string_pretty(&generate()).unwrap_or_default();
    s.push('\n');
    s
}

/// Kubernetes fields that exist in the API but that podc does not run (yet),
/// per schema definition. An unknown field found here is reported as "not
/// supported by podc" instead of as a typo.
pub fn unsupported_fields(def: &str) -> &'static [&'static str] {
    match def {
        "ObjectMeta" => &[
            "generateName",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
            "finalizers",
            "managedFields",
            "selfLink",
        ],
        "Pod" => &["status"],
        "ConfigMap" | "Secret" => &["immutable"],
        "PodSpec" => &[
            "activeDeadlineSeconds",
            "affinity",
            "automountServiceAccountToken",
            "dnsConfig",
            "dnsPolicy",
            "enableServiceLinks",
            "ephemeralContainers",
            "hostUsers",
            "imagePullSecrets",
            "os",
            "overhead",
            "preemptionPolicy",
            "priority",
            "priorityClassName",
            "readinessGates",
            "resourceClaims",
            "resources",
            "runtimeClassName",
            "schedulerName",
            "schedulingGates",
            "serviceAccount",
            "serviceAccountName",
            "setHostnameAsFQDN",
            "subdomain",
            "tolerations",
            "topologySpreadConstraints",
        ],
        "PodSecurityContext" => &[
            "appArmorProfile",
            "fsGroup",
            "fsGroupChangePolicy",
            "seLinuxChangePolicy",
            "seLinuxOptions",
            "seccompProfile",
            "supplementalGroupsPolicy",
            "windowsOptions",
        ],
        "Container" => &[
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "resizePolicy",
            "stdin",
            "stdinOnce",
            "terminationMessagePolicy",
            "tty",
            "volumeDevices",
        ],
        "Lifecycle" => &["stopSignal"],
        "ContainerPort" => &["hostPort", "hostIP"],
        "VolumeMount" => &["mountPropagation", "recursiveReadOnly", "subPathExpr"],
        "ResourceList" => &["ephemeral-storage", "hugepages-2Mi", "hugepages-1Gi"],
        "Resources" => &["claims"],
        "SecurityContext" => &[
            "appArmorProfile",
            "procMount",
            "seLinuxOptions",
            "seccompProfile",
            "windowsOptions",
        ],
        "Volume" => &[
            "awsElasticBlockStore",
            "azureDisk",
            "azureFile",
            "cephfs",
            "cinder",
            "csi",
            "downwardAPI",
            "ephemeral",
            "fc",
            "flexVolume",
            "flocker",
            "gcePersistentDisk",
            "gitRepo",
            "glusterfs",
            "image",
            "iscsi",
            "nfs",
            "persistentVolumeClaim",
            "photonPersistentDisk",
            "portworxVolume",
            "projected",
            "quobyte",
            "rbd",
            "scaleIO",
            "storageos",
            "vsphereVolume",
        ],
        "FieldSelector" => &[],
        "EnvVarSource" => &["resourceFieldRef", "fileKeyRef"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_schema_matches_the_types() {
        let committed = include_str!("../schema/pod.schema.json");
        assert!(
            committed == render(),
            "schema/pod.schema.json is out of date: run `cargo run -- schema > schema/pod.schema.json`"
        );
    }

    #[test]
    fn objects_are_closed() {
        let s = generate();
        for (name, def) in s["$defs"].as_object().unwrap() {
            if def.get("properties").is_some() {
                assert_eq!(
                    def["additionalProperties"],
                    json!(false),
                    "{name} must deny unknown fields"
                );
            }
        }
    }
}
