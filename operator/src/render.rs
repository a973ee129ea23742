//! `ephyra-operator render -f cluster.yaml`: every object the operator would create for a
//! MediaServerCluster file, as multi-document YAML, with no cluster. For GitOps users who want
//! to see and diff the result before committing.
//!
//! The file is read with the CRD types, whose serde defaults are the schema's defaults, so the
//! result is what the operator builds after the API server stored the object. Two things only
//! exist in a cluster and are stood in for: owner references (they need the stored object's
//! uid; rendered objects carry none) and the PostgreSQL password (generated once at the first
//! apply, never printed; a placeholder appears in its place).

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
    serde_saphyr::from_str(text).map_err(|e| RenderError::Parse(e.to_string()))
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
    fn an_invalid_file_is_refused_with_the_field_at_fault() {
        let bad = MINIMAL.replace("/export/media", "export/media");
        let err = render(&bad, "x").unwrap_err();
        assert!(err.to_string().contains("spec.media.nfs.path"), "{err}");
        let err = render("kind: Pod\napiVersion: v1\nmetadata: {name: x}\n", "x").unwrap_err();
        assert!(matches!(err, RenderError::Parse(_)), "{err}");
    }
}
