//! Tests against a real Kubernetes cluster (k3d, kind or a real one), run only when a
//! kubeconfig is given: `KUBECONFIG=~/.kube/config make e2e`. They install the CRD, start the
//! operator binary against the cluster, apply the minimal example in a fresh namespace and wait
//! for the objects and the status the operator reports.

use std::time::Duration;

use ephyra_crd::MediaServerCluster;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};

const SKIP_REASON: &str = "needs a Kubernetes cluster: set KUBECONFIG and run `make e2e`";

async fn client() -> anyhow::Result<Client> {
    Ok(Client::try_default().await?)
}

async fn wait_for<F, Fut, T>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: set KUBECONFIG and run `make e2e`"]
async fn operator_turns_the_minimal_example_into_a_running_stack() -> anyhow::Result<()> {
    anyhow::ensure!(std::env::var_os("KUBECONFIG").is_some(), "{SKIP_REASON}");
    let client = client().await?;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "mediaserverclusters.ephyra.io",
        &PatchParams::apply("ephyra-e2e").force(),
        &Patch::Apply(MediaServerCluster::crd()),
    )
    .await?;

    let namespace = format!("ephyra-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}
    }))?;
    namespaces.create(&PostParams::default(), &ns).await?;

    let operator_bin = ephyra_e2e::binary("ephyra-operator")?;
    let mut operator = tokio::process::Command::new(operator_bin)
        .arg("run")
        .kill_on_drop(true)
        .spawn()?;

    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/minimal.yaml"),
    )?;
    let mut cluster: MediaServerCluster = serde_saphyr::from_str(&text)?;
    cluster.metadata.namespace = Some(namespace.clone());
    let clusters: Api<MediaServerCluster> = Api::namespaced(client.clone(), &namespace);
    clusters.create(&PostParams::default(), &cluster).await?;

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
    wait_for(
        "the server StatefulSet",
        Duration::from_secs(120),
        || async {
            let list = statefulsets.list(&Default::default()).await?;
            Ok(list
                .items
                .iter()
                .any(|s| s.spec.as_ref().is_some_and(|sp| sp.replicas == Some(2)))
                .then_some(()))
        },
    )
    .await?;
    wait_for(
        "status.observedGeneration",
        Duration::from_secs(120),
        || async {
            let current = clusters.get("home").await?;
            Ok(current
                .status
                .and_then(|s| s.observed_generation)
                .map(|_| ()))
        },
    )
    .await?;

    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await?;
    operator.kill().await?;
    Ok(())
}
