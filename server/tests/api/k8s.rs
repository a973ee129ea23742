//! Status reporting into the MediaServerCluster, against the in-memory API: each replica
//! applies only its own `status.members` entry under its own field manager, the leader
//! applies `status.leader`, a follower does not, and a change is reported at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use chrono::{TimeZone as _, Utc};
use ephyra_config::ClusterIdentity;
use ephyra_crd::MemberRole;
use ephyra_server::coord::LeaderTerm;
use ephyra_server::k8s::{Reporter, Snapshot};
use ephyra_testsupport::kube_fake::{FakeApi, Recorded};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const NS: &str = "media-report";
const NAME: &str = "jelly-report";
const STATUS_PATH: &str =
    "/apis/ephyra.io/v1alpha1/namespaces/media-report/mediaserverclusters/jelly-report/status";

/// A fake API holding one MediaServerCluster (values unlike any default).
fn api_with_cluster() -> FakeApi {
    let api = FakeApi::new();
    api.insert(json!({
        "apiVersion": "ephyra.io/v1alpha1",
        "kind": "MediaServerCluster",
        "metadata": {"name": NAME, "namespace": NS, "uid": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "generation": 1},
        "spec": {
            "replicas": 2,
            "media": {
                "nfs": {"server": "nas.report.test", "path": "/export/media"},
                "libraries": [{"name": "Films", "kind": "movies", "paths": ["films"]}],
            },
            "config": {"storageClassName": "rwx-report", "size": "2Gi"},
            "transcode": {"storageClassName": "fast-report", "size": "7Gi"},
        },
        "status": {"url": "https://jelly.report.test"},
    }));
    api
}

fn identity(pod: &str) -> ClusterIdentity {
    ClusterIdentity {
        name: NAME.to_owned(),
        namespace: NS.to_owned(),
        pod_name: pod.to_owned(),
    }
}

fn snapshot(sessions: i32) -> Snapshot {
    Snapshot {
        ready: true,
        role: MemberRole::Follower,
        active_sessions: sessions,
        active_transcodes: 1,
        version: "9.8.7-test".to_owned(),
    }
}

fn query_param<'a>(request: &'a Recorded, key: &str) -> Option<&'a str> {
    request
        .query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn body(request: &Recorded) -> Result<Value> {
    serde_json::from_str(&request.body).with_context(|| format!("not JSON: {}", request.body))
}

/// The status writes made with `manager`.
fn writes_by(api: &FakeApi, manager: &str) -> Vec<Recorded> {
    api.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && query_param(r, "fieldManager") == Some(manager))
        .collect()
}

async fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    ephyra_testsupport::wait::until(what, Duration::from_secs(10), || {
        let step = check();
        async { step }
    })
    .await
}

#[tokio::test]
async fn a_replica_applies_only_its_own_member_entry_with_its_own_field_manager() -> Result<()> {
    let api = api_with_cluster();
    let reporter = Reporter::new(api.client(), identity("jelly-report-server-1"));
    let at = Utc
        .with_ymd_and_hms(2031, 5, 6, 7, 8, 9)
        .single()
        .context("time")?;
    reporter.report_member(&snapshot(4), at).await?;

    let writes = api.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    let write = &writes[0];
    assert_eq!(
        (write.method.as_str(), write.path.as_str()),
        ("PATCH", STATUS_PATH)
    );
    assert!(
        write.content_type.starts_with("application/apply-patch"),
        "{}",
        write.content_type
    );
    assert_eq!(
        query_param(write, "fieldManager"),
        Some("ephyra-server-jelly-report-server-1")
    );
    let sent = body(write)?;
    assert_eq!(
        sent["status"],
        json!({"members": [{
            "name": "jelly-report-server-1",
            "ready": true,
            "role": "Follower",
            "lastHeartbeat": "2031-05-06T07:08:09Z",
            "activeSessions": 4,
            "activeTranscodes": 1,
            "version": "9.8.7-test",
        }]}),
        "only this replica's entry, nothing else of the status"
    );
    assert!(sent.get("spec").is_none());

    // A second replica's entry joins the first; the operator's fields stay.
    let other = Reporter::new(api.client(), identity("jelly-report-server-0"));
    other.report_member(&snapshot(0), at).await?;
    let stored = api
        .get("ephyra.io/v1alpha1", "MediaServerCluster", NS, NAME)
        .context("stored")?;
    let mut names: Vec<&str> = stored["status"]["members"]
        .as_array()
        .context("members")?
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["jelly-report-server-0", "jelly-report-server-1"]);
    assert_eq!(stored["status"]["url"], "https://jelly.report.test");
    Ok(())
}

#[tokio::test]
async fn the_leader_applies_status_leader_and_reports_itself_as_leader() -> Result<()> {
    let api = api_with_cluster();
    let reporter = Reporter::new(api.client(), identity("jelly-report-server-2"));
    let since = Utc
        .with_ymd_and_hms(2031, 1, 2, 3, 4, 5)
        .single()
        .context("time")?;
    let term = LeaderTerm {
        epoch: 42,
        holder: "jelly-report-server-2".to_owned(),
        since,
    };
    let (_lead, leadership) = watch::channel(Some(term));
    let shutdown = CancellationToken::new();
    let task =
        tokio::spawn(reporter.run_with(leadership, || async { snapshot(1) }, shutdown.clone()));
    let leader_write = eventually("the leader write", || {
        Ok(writes_by(&api, "ephyra-server-leader").into_iter().next())
    })
    .await?;
    shutdown.cancel();
    task.await?;

    assert_eq!(leader_write.path, STATUS_PATH);
    assert_eq!(
        body(&leader_write)?["status"],
        json!({"leader": {"pod": "jelly-report-server-2", "since": "2031-01-02T03:04:05Z", "epoch": 42}})
    );
    let member = writes_by(&api, "ephyra-server-jelly-report-server-2");
    assert_eq!(body(&member[0])?["status"]["members"][0]["role"], "Leader");
    // On shutdown the replica says at once that it is draining.
    let last = body(member.last().context("a last write")?)?;
    assert_eq!(last["status"]["members"][0]["ready"], false);
    let stored = api
        .get("ephyra.io/v1alpha1", "MediaServerCluster", NS, NAME)
        .context("stored")?;
    assert_eq!(stored["status"]["leader"]["epoch"], 42);
    Ok(())
}

#[tokio::test]
async fn a_follower_does_not_apply_status_leader() -> Result<()> {
    let api = api_with_cluster();
    let reporter = Reporter::new(api.client(), identity("jelly-report-server-3"));
    let (_lead, leadership) = watch::channel(None);
    let shutdown = CancellationToken::new();
    let task =
        tokio::spawn(reporter.run_with(leadership, || async { snapshot(2) }, shutdown.clone()));
    let first = eventually("the member write", || {
        Ok(writes_by(&api, "ephyra-server-jelly-report-server-3")
            .into_iter()
            .next())
    })
    .await?;
    shutdown.cancel();
    task.await?;
    assert_eq!(body(&first)?["status"]["members"][0]["role"], "Follower");
    ensure!(
        writes_by(&api, "ephyra-server-leader").is_empty(),
        "a follower wrote status.leader: {:?}",
        api.requests()
    );
    let stored = api
        .get("ephyra.io/v1alpha1", "MediaServerCluster", NS, NAME)
        .context("stored")?;
    assert!(stored["status"].get("leader").is_none());
    Ok(())
}

#[tokio::test]
async fn a_change_is_reported_at_once_without_waiting_for_the_interval() -> Result<()> {
    let api = api_with_cluster();
    let reporter = Reporter::new(api.client(), identity("jelly-report-server-4"));
    let (_lead, leadership) = watch::channel(None);
    let current = Arc::new(Mutex::new(snapshot(0)));
    let source = Arc::clone(&current);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(reporter.run_with(
        leadership,
        move || {
            let now = source
                .lock()
                .map(|s| s.clone())
                .unwrap_or_else(|p| p.into_inner().clone());
            async move { now }
        },
        shutdown.clone(),
    ));
    let manager = "ephyra-server-jelly-report-server-4";
    eventually("the first report", || {
        Ok(writes_by(&api, manager).into_iter().next())
    })
    .await?;
    let started = Instant::now();
    current
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .active_sessions = 3;
    eventually("the change to be reported", || {
        let writes = writes_by(&api, manager);
        let last = writes.last().map(body).transpose()?;
        Ok(last.filter(|b| b["status"]["members"][0]["activeSessions"] == 3))
    })
    .await?;
    ensure!(started.elapsed() < ephyra_server::k8s::REPORT_INTERVAL);
    shutdown.cancel();
    task.await?;
    Ok(())
}
