//! The Secret `<cluster>-admin` with the initial administrator's generated password, built
//! only when `spec.server.initialAdmin` names a user without a `passwordSecret`.
//!
//! The password is an input, like PostgreSQL's: `apply` reads it from the existing Secret and
//! generates one only when there is none, so a reconcile never changes it. The replicas read
//! it through `secretKeyRef` (`EPHYRA_ADMIN_PASSWORD`); the server uses it once, to create the
//! administrator in an empty database, and never again. Nothing here prints it.

use std::collections::BTreeMap;

use ephyra_config::Secret as SecretValue;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::meta;
use crate::names::Component;
use crate::validate::{AdminPassword, ValidatedCluster};

/// Key of the password in the generated Secret.
pub const PASSWORD_KEY: &str = "password";
/// Key of the user name in the generated Secret (for people reading it; the replicas get the
/// name from the spec).
pub const USERNAME_KEY: &str = "username";

/// The generated Secret, when the spec asks for one.
pub fn secret(v: &ValidatedCluster, password: &SecretValue) -> Option<Secret> {
    let admin = v.initial_admin.as_ref()?;
    if admin.password != AdminPassword::Generated {
        return None;
    }
    let data = BTreeMap::from([
        (
            PASSWORD_KEY.to_owned(),
            ByteString(password.expose().as_bytes().to_vec()),
        ),
        (
            USERNAME_KEY.to_owned(),
            ByteString(admin.user_name.as_bytes().to_vec()),
        ),
    ]);
    Some(Secret {
        metadata: meta(v, v.names.admin(), Component::Server),
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    })
}

/// Where a person finds the credentials, for the status and the event.
pub fn where_to_sign_in(v: &ValidatedCluster) -> String {
    let ns = v.names.namespace().as_str();
    match (&v.initial_admin, v.admin_password_ref()) {
        (Some(admin), Some((secret, key))) => format!(
            "sign in as {} with the password in Secret {secret} key {key}: kubectl -n {ns} get \
             secret {secret} -o jsonpath='{{.data.{key}}}' | base64 -d",
            admin.user_name
        ),
        _ => "spec.server.initialAdmin is not set: the first person to open the web client \
              creates the administrator in the first-run wizard"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;
    use crate::testing::Fixture;
    use ephyra_crd::{InitialAdminSpec, MediaServerCluster, PasswordSecretRef};

    fn with_admin(secret: Option<PasswordSecretRef>) -> ValidatedCluster {
        let mut msc = MediaServerCluster::test();
        msc.spec.server.initial_admin = Some(InitialAdminSpec {
            user_name: "household-head".to_owned(),
            password_secret: secret,
        });
        validated(msc)
    }

    #[test]
    fn a_generated_password_gets_its_own_owned_secret() {
        let v = with_admin(None);
        let s = secret(&v, &SecretValue::new("generated-for-test")).expect("a Secret");
        assert_eq!(s.metadata.name.as_deref(), Some("jelly-admin"));
        assert_owned(&s.metadata);
        let data = s.data.unwrap();
        assert_eq!(data[PASSWORD_KEY].0, b"generated-for-test");
        assert_eq!(data[USERNAME_KEY].0, b"household-head");
        assert!(where_to_sign_in(&v).contains("Secret jelly-admin key password"));
    }

    #[test]
    fn a_persons_secret_or_no_admin_builds_nothing() {
        let v = with_admin(Some(PasswordSecretRef {
            name: "family-vault".to_owned(),
            key: "admin-pw".to_owned(),
        }));
        assert!(secret(&v, &SecretValue::new("x")).is_none());
        assert!(where_to_sign_in(&v).contains("Secret family-vault key admin-pw"));
        let none = default_cluster();
        assert!(secret(&none, &SecretValue::new("x")).is_none());
        assert!(where_to_sign_in(&none).contains("first-run wizard"));
    }
}
