//! `ephyra-operator render -f cluster.yaml`: every object the operator would create for a
//! MediaServerCluster file, as multi-document YAML, with no cluster. For GitOps users who want
//! to see and diff the result before committing.
//!
//! The file is read with the CRD types, whose serde defaults are the schema's defaults, so the
//! result is what the operator builds after the API server stored the object. Two things only
//! exist in a cluster and are stood in for: owner references (they need the stored object's
//! uid; rendered objects carry none) and the PostgreSQL password (generated once at the first
//! apply, never printed; a placeholder appears in its place).
//!
//! A field the CRD does not know is refused here, naming it. In a cluster the API server prunes
//! such a field before the operator ever sees it (the CRD's schema is structural, with no
//! `x-kubernetes-preserve-unknown-fields`), and `kubectl apply` prints `Warning: unknown field
//! "spec.…"` (`--validate=strict` refuses the object). A file has no API server in front of it,
//! so `render` refuses what the API server would drop: what it prints is what a cluster would
//! run, never less than the file seems to ask for.

use ephyra_config::Secret as SecretValue;
use ephyra_crd::MediaServerCluster;

use crate::build::{self, BuildInputs};
use crate::validate::{InvalidSpec, validate};

/// Stands in for the generated PostgreSQL password.
pub const PASSWORD_PLACEHOLDER: &str = "generated-at-first-apply";

/// Why a file could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The file is not a MediaServerCluster.
    #[error("not a MediaServerCluster: {0}")]
    Parse(String),
    /// The spec is invalid.
    #[error("invalid spec: {0}")]
    Invalid(#[from] InvalidSpec),
    /// Building failed.
    #[error(transparent)]
    Build(#[from] build::BuildError),
    /// An object did not render as YAML.
    #[error("cannot render YAML: {0}")]
    Yaml(String),
}

/// Reads a MediaServerCluster from YAML text.
pub fn parse(text: &str) -> Result<MediaServerCluster, RenderError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        api_version: Option<String>,
        kind: Option<String>,
    }
    let head: Head = serde_saphyr::from_str(text).map_err(|e| RenderError::Parse(e.to_string()))?;
    let api_version = format!("{}/{}", ephyra_crd::GROUP, ephyra_crd::VERSION);
    if head.kind.as_deref() != Some("MediaServerCluster")
        || head.api_version.as_deref() != Some(api_version.as_str())
    {
        return Err(RenderError::Parse(format!(
            "expected apiVersion {api_version} and kind MediaServerCluster, found {} {}",
            head.api_version.as_deref().unwrap_or("(none)"),
            head.kind.as_deref().unwrap_or("(none)")
        )));
    }
    let raw: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| RenderError::Parse(e.to_string()))?;
    let msc: MediaServerCluster =
        serde_saphyr::from_str(text).map_err(|e| RenderError::Parse(e.to_string()))?;
    let read = serde_json::to_value(&msc).map_err(|e| RenderError::Parse(e.to_string()))?;
    let mut unknown = Vec::new();
    let mut quoted = Vec::new();
    unknown_fields(&raw, &read, "", &mut unknown, &mut quoted);
    if !quoted.is_empty() {
        // YAML readers turn "3" into 3; the API server does not (the schema says integer).
        return Err(RenderError::Parse(format!(
            "{} must be written without quotes: the CRD wants a number or true/false there, \
             and the API server refuses a string",
            quoted.join(", ")
        )));
    }
    if !unknown.is_empty() {
        return Err(RenderError::Parse(format!(
            "unknown field{} {} (the API server would drop {}; check the spelling and the \
             CRD's version)",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            if unknown.len() == 1 { "it" } else { "them" },
        )));
    }
    Ok(msc)
}

/// Paths of the keys in `raw` that the typed read dropped (`read` is the typed value written
/// back) into `out`, and of strings read as numbers or booleans into `quoted`. Keys whose value
/// is null or empty are skipped: the types leave those out on write.
fn unknown_fields(
    raw: &serde_json::Value,
    read: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
    quoted: &mut Vec<String>,
) {
    use serde_json::Value;
    match (raw, read) {
        (Value::Object(raw), Value::Object(read)) => {
            for (key, value) in raw {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let empty = match value {
                    Value::Null => true,
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                    _ => false,
                };
                match read.get(key) {
                    Some(inner) => unknown_fields(value, inner, &here, out, quoted),
                    None if !empty => out.push(here),
                    None => {}
                }
            }
        }
        (Value::Array(raw), Value::Array(read)) => {
            for (i, (value, inner)) in raw.iter().zip(read).enumerate() {
                unknown_fields(value, inner, &format!("{path}[{i}]"), out, quoted);
            }
        }
        (Value::String(_), Value::Number(_) | Value::Bool(_)) => quoted.push(path.to_owned()),
        _ => {}
    }
}

/// Every desired object of `msc`, as JSON values (for checks), in apply order.
pub fn objects(msc: &MediaServerCluster) -> Result<Vec<serde_json::Value>, RenderError> {
    let mut msc = msc.clone();
    // Rendered objects must not point at an object that does not exist: no uid, no owner.
    msc.metadata.uid = None;
    let v = validate(&msc)?;
    let inputs = BuildInputs {
        postgres_password: SecretValue::new(PASSWORD_PLACEHOLDER),
        admin_password: SecretValue::new(PASSWORD_PLACEHOLDER),
        redis_password: SecretValue::new(PASSWORD_PLACEHOLDER),
    };
    build::desired(&v, &inputs)?
        .into_iter()
        .map(|child| {
            serde_json::to_value(&child.object).map_err(|e| RenderError::Yaml(e.to_string()))
        })
        .collect()
}

/// The multi-document YAML for `text` (a MediaServerCluster), with a header saying what is a
/// stand-in. `source` names the file in the header.
pub fn render(text: &str, source: &str) -> Result<String, RenderError> {
    let msc = parse(text)?;
    let mut out = format!(
        "# Objects the Ephyra operator creates for {source}, rendered by `ephyra-operator render`.\n\
         # At apply time each namespaced object also gets an ownerReference to the\n\
         # MediaServerCluster (it needs the stored object's uid). The PostgreSQL Secret's\n\
         # password is a placeholder (`{PASSWORD_PLACEHOLDER}`): the operator generates the\n\
         # real one once, at the first apply, and never prints it.\n"
    );
    for object in objects(&msc)? {
        let yaml =
            serde_saphyr::to_string(&object).map_err(|e| RenderError::Yaml(e.to_string()))?;
        out.push_str("---\n");
        out.push_str(&yaml);
        if !yaml.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
apiVersion: ephyra.io/v1alpha1
kind: MediaServerCluster
metadata:
  name: media
  namespace: ephyra
spec:
  media:
    nfs:
      server: nas.lan
      path: /export/media
";

    #[test]
    fn a_minimal_file_renders_every_object_with_defaults_applied() {
        let text = render(MINIMAL, "minimal.yaml").unwrap();
        assert!(text.starts_with("# Objects the Ephyra operator creates for minimal.yaml"));
        let kinds: Vec<_> = objects(&parse(MINIMAL).unwrap())
            .unwrap()
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            vec![
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "ConfigMap",
                "Secret",
                "Service",
                "Service",
                "StatefulSet",
                "Secret",
                "Service",
                "Deployment",
                "NetworkPolicy",
                "PersistentVolumeClaim",
                "Service",
                "Service",
                "StatefulSet",
                "PodDisruptionBudget",
            ]
        );
        assert!(text.contains("replicas: 2"));
    }

    #[test]
    fn rendered_objects_have_no_owner_and_no_real_password() {
        let mut msc = parse(MINIMAL).unwrap();
        msc.metadata.uid = Some("should-be-ignored".to_owned());
        for object in objects(&msc).unwrap() {
            assert!(object["metadata"].get("ownerReferences").is_none());
        }
        let text = render(MINIMAL, "x").unwrap();
        // base64 of the placeholder
        assert!(text.contains("Z2VuZXJhdGVkLWF0LWZpcnN0LWFwcGx5"));
    }

    #[test]
    fn unknown_fields_are_refused_by_name_and_known_empty_ones_pass() {
        let bad = MINIMAL.replace(
            "spec:\n",
            "spec:\n  securityContext:\n    privileged: true\n  server:\n    env:\n    - name: A\n      value: b\n      valueFromm: x\n",
        );
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains("spec.securityContext"), "{err}");
        assert!(err.contains("spec.server.env[0].valueFromm"), "{err}");
        let typo = MINIMAL.replace("  media:\n", "  replica: 3\n  media:\n");
        let err = parse(&typo).unwrap_err().to_string();
        assert!(err.contains("unknown field spec.replica "), "{err}");
        // Fields the types leave out when empty are not unknown.
        let empty = MINIMAL.replace(
            "spec:\n",
            "spec:\n  scheduling:\n    tolerations: []\n    nodeSelector: {}\n  ingress: null\n",
        );
        parse(&empty).unwrap();
    }

    #[test]
    fn replicas_written_as_a_string_are_refused() {
        let quoted = MINIMAL.replace("spec:\n", "spec:\n  replicas: \"3\"\n");
        let err = parse(&quoted).unwrap_err();
        assert!(matches!(err, RenderError::Parse(_)), "{err}");
        assert!(
            err.to_string()
                .contains("spec.replicas must be written without quotes"),
            "{err}"
        );
    }

    #[test]
    fn an_invalid_file_is_refused_with_the_field_at_fault() {
        let bad = MINIMAL.replace("/export/media", "export/media");
        let err = render(&bad, "x").unwrap_err();
        assert!(err.to_string().contains("spec.media.nfs.path"), "{err}");
        let err = render("kind: Pod\napiVersion: v1\nmetadata: {name: x}\n", "x").unwrap_err();
        assert!(matches!(err, RenderError::Parse(_)), "{err}");
    }
}
