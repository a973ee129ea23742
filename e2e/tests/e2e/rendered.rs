//! What the operator renders, run: for each example in `deploy/examples/`, the objects the
//! operator's build functions make are taken apart as a kubelet would — the server container's
//! args and environment, Secrets resolved from the rendered Secrets, `fieldRef`s filled in,
//! the ConfigMap written where it is mounted — with volume paths mapped onto local folders and
//! service addresses onto a local PostgreSQL and Redis. The built server is started with
//! exactly that, and must turn ready on the probes' paths and ports, let the first
//! administrator sign in (the generated Secret, the person's Secret, or the first-run wizard),
//! scan the mapped media folder and serve a direct-stream range.
//!
//! The rendered configuration is also parsed strictly (`ServerConfig::from_yaml` refuses
//! unknown fields, as the server does), so a key the operator writes and the server does not
//! know fails here, not in a cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use ephyra_e2e::wait::eventually;
use ephyra_e2e::{Ports, ServerProcess};
use ephyra_testsupport::media::{Container as MediaContainer, generate_video};
use ephyra_testsupport::net::free_port;
use ephyra_testsupport::redis::RedisGuard;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Probe, Secret, Service, Volume};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

/// The header of the client this test plays.
const CLIENT: &str = r#"MediaBrowser Client="Rendered%20Pod%20Test", Device="kubelet-stand-in", DeviceId="rendered-0001", Version="0.0.1""#;

/// The password this test puts into a Secret the person is expected to create.
const PERSONS_ADMIN_PASSWORD: &str = "person-made secret pw";

/// The password the wizard path chooses.
const WIZARD_PASSWORD: &str = "chosen in the wizard";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Objects of one kind from the rendered list, typed.
fn all<K: k8s_openapi::serde::de::DeserializeOwned>(
    objects: &[Value],
    kind: &str,
) -> Result<Vec<K>> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| serde_json::from_value(o.clone()).with_context(|| format!("a rendered {kind}")))
        .collect()
}

fn named<'a, K: kube::Resource>(list: &'a [K], name: &str) -> Option<&'a K> {
    list.iter().find(|o| o.meta().name.as_deref() == Some(name))
}

/// Rewrites a path under one of the pod's mount paths to the local folder standing in for it.
fn map_path(mounts: &BTreeMap<String, PathBuf>, text: &str) -> String {
    // Longest mount first, so `/config` does not capture `/configmap/x`.
    let mut by_length: Vec<_> = mounts.iter().collect();
    by_length.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
    for (mount, local) in by_length {
        if text == mount {
            return local.display().to_string();
        }
        if let Some(rest) = text.strip_prefix(&format!("{mount}/")) {
            return local.join(rest).display().to_string();
        }
    }
    text.to_owned()
}

/// Rewrites every string in a YAML/JSON tree that is a path under a mount.
fn map_paths_in(value: &mut Value, mounts: &BTreeMap<String, PathBuf>) {
    match value {
        Value::String(s) => *s = map_path(mounts, s),
        Value::Array(a) => a.iter_mut().for_each(|v| map_paths_in(v, mounts)),
        Value::Object(o) => o.values_mut().for_each(|v| map_paths_in(v, mounts)),
        _ => {}
    }
}

/// `scheme://[user[:pw]@]host:port[/rest]` → (host, port).
fn host_and_port(url: &str) -> Result<(String, u16)> {
    let after_scheme = url.split_once("://").context("a URL with a scheme")?.1;
    let authority = after_scheme.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = host_port.rsplit_once(':').context("a URL with a port")?;
    Ok((host.to_owned(), port.parse()?))
}

/// The in-cluster address of a rendered Service: (`<name>.<namespace>.svc`, its first port).
fn service_address(services: &[Service], name: &str) -> Result<(String, u16)> {
    let service = named(services, name).with_context(|| format!("Service {name} is rendered"))?;
    let port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .context("the Service has a port")?
        .port;
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    Ok((format!("{name}.{namespace}.svc"), u16::try_from(port)?))
}

/// The port number a probe targets, resolving a named port against the container.
fn probe_target(container: &Container, probe: &Probe) -> Result<(String, i32)> {
    let get = probe
        .http_get
        .as_ref()
        .context("the probe is an HTTP GET")?;
    let port = match &get.port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .with_context(|| format!("the container declares port {name}"))?
                .container_port
        }
    };
    Ok((get.path.clone().unwrap_or_else(|| "/".to_owned()), port))
}

/// The rendered configuration file, read as strictly as the server reads it: a key the server
/// does not know fails here, as it would stop every replica in a cluster.
fn strict_config(file: &str, content: &str) -> Result<ephyra_config::ServerConfig> {
    ephyra_config::ServerConfig::from_yaml(content)
        .map_err(|e| anyhow::anyhow!("{file}: the server refuses the rendered configuration: {e}"))
}

/// Every environment variable the operator sets must be one the server reads: an unknown one is
/// ignored by the server, so a renamed or misspelt key would silently lose its setting.
fn known_env(file: &str, container: &Container) -> Result<()> {
    // The kubelet-provided names the server reads as fallbacks (config/src/env.rs).
    const FALLBACKS: &[&str] = &["POD_NAME", "POD_NAMESPACE"];
    for var in container.env.iter().flatten() {
        let name = var.name.as_str();
        // `NVIDIA_*` is read by the NVIDIA container runtime, not by the server.
        let for_the_runtime = name.starts_with("NVIDIA_");
        ensure!(
            ephyra_config::ENV_KEYS.contains(&name) || FALLBACKS.contains(&name) || for_the_runtime,
            "{file}: the operator sets {name}, which the server does not read"
        );
    }
    Ok(())
}

/// The server container of a rendered StatefulSet's pod template.
fn server_container(set: &StatefulSet) -> Result<&Container> {
    set.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .context("a pod template")?
        .containers
        .iter()
        .find(|c| c.name == "server")
        .context("the server container")
}

/// What the test stands in for outside the rendered objects.
struct Stand {
    /// Local PostgreSQL database for this example.
    database_url: String,
    /// Local Redis.
    redis_url: String,
    /// The Secrets a person creates before applying (`name/key` → value).
    external: BTreeMap<String, String>,
}

/// Resolves one environment variable as the kubelet would.
fn resolve(
    var: &EnvVar,
    secrets: &[Secret],
    stand: &Stand,
    pod: &str,
    namespace: &str,
) -> Result<String> {
    if let Some(value) = &var.value {
        return Ok(value.clone());
    }
    let from = var
        .value_from
        .as_ref()
        .with_context(|| format!("{} has a value or a source", var.name))?;
    if let Some(field) = &from.field_ref {
        return match field.field_path.as_str() {
            "metadata.name" => Ok(pod.to_owned()),
            "metadata.namespace" => Ok(namespace.to_owned()),
            other => bail!(
                "{}: fieldRef {other} is not filled in by this test",
                var.name
            ),
        };
    }
    let secret_ref = from
        .secret_key_ref
        .as_ref()
        .with_context(|| format!("{}: only values, fieldRefs and secretKeyRefs", var.name))?;
    ensure!(
        secret_ref.optional != Some(true),
        "{}: an optional Secret reference could start a half-configured replica",
        var.name
    );
    if let Some(secret) = named(secrets, &secret_ref.name) {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&secret_ref.key))
            .with_context(|| {
                format!(
                    "rendered Secret {} has key {}",
                    secret_ref.name, secret_ref.key
                )
            })?;
        return Ok(String::from_utf8(bytes.0.clone())?);
    }
    stand
        .external
        .get(&format!("{}/{}", secret_ref.name, secret_ref.key))
        .cloned()
        .with_context(|| {
            format!(
                "{} refers to Secret {} key {}, neither rendered nor known as one the person makes",
                var.name, secret_ref.name, secret_ref.key
            )
        })
}

async fn json_of(response: reqwest::Response) -> Result<Value> {
    let status = response.status();
    let text = response.text().await?;
    ensure!(status.is_success(), "{status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

async fn sign_in(http: &reqwest::Client, url: &str, user: &str, password: &str) -> Result<String> {
    let reply = http
        .post(format!("{url}/Users/AuthenticateByName"))
        .header("Authorization", CLIENT)
        .json(&json!({"Username": user, "Pw": password}))
        .send()
        .await?;
    let body = json_of(reply).await?;
    ensure!(body["User"]["Policy"]["IsAdministrator"] == true, "{body}");
    Ok(body["AccessToken"].as_str().context("a token")?.to_owned())
}

/// Walks jellyfin-web's first-run wizard in its own order, creating `first-person`.
async fn wizard(http: &reqwest::Client, url: &str, file: &str) -> Result<()> {
    json_of(
        http.get(format!("{url}/Startup/Configuration"))
            .send()
            .await?,
    )
    .await?;
    let steps = [
        (
            "/Startup/Configuration",
            json!({"UICulture": "en-GB", "MetadataCountryCode": "GB", "PreferredMetadataLanguage": "en"}),
        ),
        ("/Startup/User", Value::Null),
        (
            "/Startup/User",
            json!({"Name": "first-person", "Password": WIZARD_PASSWORD}),
        ),
        ("/Startup/RemoteAccess", json!({"EnableRemoteAccess": true})),
        ("/Startup/Complete", Value::Null),
    ];
    for (path, body) in steps {
        // A null body stands for the wizard's GET of the same page (or the bodyless Complete).
        let reply = match (&body, path) {
            (Value::Null, "/Startup/User") => http.get(format!("{url}{path}")).send().await?,
            (Value::Null, _) => http.post(format!("{url}{path}")).send().await?,
            _ => http.post(format!("{url}{path}")).json(&body).send().await?,
        };
        let status = reply.status();
        ensure!(
            status.is_success(),
            "{file}: wizard step {path}: {status}: {}",
            reply.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// Runs one example end to end.
async fn run_example(file: &str, redis: &RedisGuard) -> Result<()> {
    let text = std::fs::read_to_string(workspace().join("deploy/examples").join(file))?;
    let msc = ephyra_operator::render::parse(&text)?;
    let objects = ephyra_operator::render::objects(&msc)?;
    let namespace = msc.metadata.namespace.clone().unwrap_or_default();
    let cluster = msc.metadata.name.clone().unwrap_or_default();

    let sets: Vec<StatefulSet> = all(&objects, "StatefulSet")?;
    let server_set =
        named(&sets, &format!("{cluster}-server")).context("the server StatefulSet")?;
    let pod_spec = server_set
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .context("a pod template")?;
    let container = server_container(server_set)?;
    known_env(file, container)?;
    let secrets: Vec<Secret> = all(&objects, "Secret")?;
    let config_maps: Vec<ConfigMap> = all(&objects, "ConfigMap")?;
    let services: Vec<Service> = all(&objects, "Service")?;

    // Volumes → local folders; the ConfigMap's files are written where it is mounted.
    let root = tempfile::tempdir()?;
    let volumes: BTreeMap<&str, &Volume> = pod_spec
        .volumes
        .iter()
        .flatten()
        .map(|v| (v.name.as_str(), v))
        .collect();
    let mut mounts = BTreeMap::new();
    let mut config_files = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let local = root.path().join("volumes").join(&mount.name);
        std::fs::create_dir_all(&local)?;
        if let Some(cm) = volumes
            .get(mount.name.as_str())
            .and_then(|v| v.config_map.as_ref())
        {
            let map = named(&config_maps, &cm.name)
                .with_context(|| format!("ConfigMap {} is rendered", cm.name))?;
            for (key, value) in map.data.iter().flatten() {
                config_files.push((local.join(key), value.clone()));
            }
        }
        mounts.insert(mount.mount_path.clone(), local);
    }
    ensure!(
        !config_files.is_empty(),
        "the configuration is mounted from a ConfigMap"
    );
    let mut listen_port = None;
    for (path, content) in &config_files {
        let parsed = strict_config(file, content)?;
        listen_port = Some(parsed.listen.port());
        let mut tree: Value = serde_saphyr::from_str(content)?;
        map_paths_in(&mut tree, &mounts);
        std::fs::write(path, serde_saphyr::to_string(&tree)?)?;
    }
    let listen_port = i32::from(listen_port.context("a listen address")?);

    // Probes: on the port the server listens on, at paths it serves (checked once it runs).
    let mut probe_paths = Vec::new();
    for probe in [
        &container.startup_probe,
        &container.readiness_probe,
        &container.liveness_probe,
    ]
    .into_iter()
    .flatten()
    {
        let (path, port) = probe_target(container, probe)?;
        ensure!(
            port == listen_port,
            "{file}: a probe targets port {port}, the server listens on {listen_port}"
        );
        probe_paths.push(path);
    }
    let readiness = container
        .readiness_probe
        .as_ref()
        .with_context(|| format!("{file}: the server has a readiness probe"))?;
    let readiness_path = probe_target(container, readiness)?.0;

    // The stand-ins: a fresh database on the local PostgreSQL, the local Redis, the Secrets a
    // person is told to create.
    // A CloudNativePG Cluster is not run here: its `<name>-app` Secret (which CloudNativePG
    // writes, not the operator) is stood in for with the `uri` CloudNativePG would write, and
    // its `-rw` Service is mapped onto the local PostgreSQL below.
    let cnpg_cluster = objects
        .iter()
        .find(|o| o["apiVersion"] == "postgresql.cnpg.io/v1" && o["kind"] == "Cluster")
        .and_then(|o| o["metadata"]["name"].as_str())
        .map(str::to_owned);
    let mut external = BTreeMap::new();
    if let Some(name) = &cnpg_cluster {
        external.insert(
            format!("{name}-app/uri"),
            format!("postgresql://ephyra:stand-in@{name}-rw.{namespace}:5432/ephyra"),
        );
    }
    let stand = Stand {
        database_url: ephyra_testsupport::postgres::fresh_database().await?,
        redis_url: redis.url(),
        external: external
            .into_iter()
            .chain([
                (
                    "office-postgres-app/uri".to_owned(),
                    "postgres://stand-in.office.svc:5432/app".to_owned(),
                ),
                (
                    "office-redis/url".to_owned(),
                    "redis://stand-in.office.svc:6379".to_owned(),
                ),
                (
                    "office-admin/password".to_owned(),
                    PERSONS_ADMIN_PASSWORD.to_owned(),
                ),
            ])
            .collect(),
    };
    let pod = format!("{cluster}-server-0");
    let mut env = Vec::new();
    for var in container.env.iter().flatten() {
        let mut value = resolve(var, &secrets, &stand, &pod, &namespace)?;
        match var.name.as_str() {
            // Service addresses → the local ones; a managed backend's URL must name its Service.
            "EPHYRA_DATABASE_URL" => {
                let (host, port) = host_and_port(&value)?;
                if let Ok(managed) = service_address(&services, &format!("{cluster}-postgres")) {
                    ensure!(
                        (host.clone(), port) == managed,
                        "{file}: the database URL names {host}:{port}, the Service is {managed:?}"
                    );
                }
                if let Some(name) = &cnpg_cluster {
                    let rw = format!("{name}-rw.{namespace}");
                    ensure!(
                        (host.as_str(), port) == (rw.as_str(), 5432),
                        "{file}: the database URL names {host}:{port}, not {rw}:5432 (CloudNativePG's primary)"
                    );
                }
                value = stand.database_url.clone();
            }
            "EPHYRA_REDIS_URL" => {
                let (host, port) = host_and_port(&value)?;
                if let Ok(managed) = service_address(&services, &format!("{cluster}-redis")) {
                    ensure!(
                        (host.clone(), port) == managed,
                        "{file}: the Redis URL names {host}:{port}, the Service is {managed:?}"
                    );
                }
                value = stand.redis_url.clone();
            }
            _ => value = map_path(&mounts, &value),
        }
        env.push((var.name.clone(), value));
    }
    // Ports: the pod's 8096/9096 → free local ones (the only override of the rendered files).
    let ports = Ports {
        api: free_port()?,
        admin: free_port()?,
    };
    env.push((
        "EPHYRA_LISTEN".to_owned(),
        format!("127.0.0.1:{}", ports.api),
    ));
    env.push((
        "EPHYRA_ADMIN_LISTEN".to_owned(),
        format!("127.0.0.1:{}", ports.admin),
    ));
    let args: Vec<String> = container
        .args
        .iter()
        .flatten()
        .map(|a| map_path(&mounts, a))
        .collect();

    // Media in the mapped library folders: one short video per library.
    let config_text = std::fs::read_to_string(&config_files[0].0)?;
    let config =
        ephyra_config::ServerConfig::from_yaml(&config_text).map_err(anyhow::Error::msg)?;
    let mut videos = 0;
    for library in &config.libraries {
        let folder = library.folders.first().context("a library folder")?;
        let path = match library.kind {
            ephyra_config::LibraryKind::Movies => {
                folder.join("Rendered Film (2024)/Rendered Film (2024).mkv")
            }
            ephyra_config::LibraryKind::Tvshows => {
                folder.join("Rendered Show/Season 01/Rendered Show S01E01.mkv")
            }
        };
        ensure!(
            path.starts_with(root.path()),
            "{file}: library folder {} is not on a mapped volume",
            folder.display()
        );
        generate_video(&path, 3, MediaContainer::Mkv).await?;
        videos += 1;
    }
    ensure!(
        videos > 0,
        "{file}: the rendered configuration has a library"
    );

    let server = ServerProcess::start_exactly(
        &format!("rendered-{cluster}"),
        ports,
        &args,
        &env,
        &root.path().join("server.log"),
    )
    .await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let url = server.url.clone();
    let log = || server.log();

    eventually(
        "the readiness probe",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            let http = http.clone();
            let probe = format!("{url}{readiness_path}");
            async move {
                match http.get(&probe).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("{}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await
    .with_context(log)?;
    for path in &probe_paths {
        let status = http.get(format!("{url}{path}")).send().await?.status();
        ensure!(
            status.is_success(),
            "{file}: probe path {path} answers {status}"
        );
    }

    // The first sign-in: the administrator the operator configured, or the wizard.
    let admin_user = env
        .iter()
        .find(|(k, _)| k == "EPHYRA_ADMIN_USER")
        .map(|(_, v)| v.clone());
    let token = match admin_user {
        Some(user) => {
            let password = env
                .iter()
                .find(|(k, _)| k == "EPHYRA_ADMIN_PASSWORD")
                .map(|(_, v)| v.clone())
                .context("EPHYRA_ADMIN_PASSWORD comes with EPHYRA_ADMIN_USER")?;
            let info = json_of(http.get(format!("{url}/System/Info/Public")).send().await?).await?;
            ensure!(
                info["StartupWizardCompleted"] == true,
                "{file}: the operator's administrator closes the wizard"
            );
            sign_in(&http, &url, &user, &password)
                .await
                .with_context(log)?
        }
        None => {
            let info = json_of(http.get(format!("{url}/System/Info/Public")).send().await?).await?;
            ensure!(
                info["StartupWizardCompleted"] == false,
                "{file}: without initialAdmin the wizard is the way in"
            );
            wizard(&http, &url, file).await.with_context(log)?;
            sign_in(&http, &url, "first-person", WIZARD_PASSWORD)
                .await
                .with_context(log)?
        }
    };
    // The server read the mapped configuration file, wrote its users to the stand-in
    // PostgreSQL (not a SQLite file of its own) and took leadership through the Redis.
    let info = json_of(http.get(format!("{url}/System/Info/Public")).send().await?).await?;
    ensure!(
        info["ServerName"] == config.server_name.as_str() && info["StartupWizardCompleted"] == true,
        "{file}: /System/Info/Public after the first sign-in: {info}"
    );
    let users: i64 = {
        use sqlx::Connection as _;
        let mut db = sqlx::PgConnection::connect(&stand.database_url).await?;
        sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&mut db)
            .await?
    };
    ensure!(users == 1, "{file}: {users} users in the stand-in database");
    eventually(
        "leadership through the Redis",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let http = http.clone();
            let probe = format!("{url}{readiness_path}");
            async move {
                let reply = http.get(&probe).send().await.map_err(|e| e.to_string())?;
                let body: Value = reply.json().await.map_err(|e| e.to_string())?;
                let leads = ephyra_e2e::cluster::field(&body, "role")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.eq_ignore_ascii_case("leader"));
                if leads { Ok(()) } else { Err(body.to_string()) }
            }
        },
    )
    .await
    .with_context(log)?;

    let auth = format!(r#"{CLIENT}, Token="{token}""#);
    let refresh = http
        .post(format!("{url}/Library/Refresh"))
        .header("Authorization", &auth)
        .send()
        .await?;
    ensure!(
        refresh.status().is_success(),
        "{file}: POST /Library/Refresh: {}",
        refresh.status()
    );

    // The scan of the mapped media folder finds every video.
    let items = eventually(
        "the library scan",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let http = http.clone();
            let request = format!(
                "{url}/Items?Recursive=true&IncludeItemTypes=Movie,Episode&Fields=MediaSources"
            );
            let auth = auth.clone();
            async move {
                let reply = http
                    .get(&request)
                    .header("Authorization", &auth)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let body: Value = reply.json().await.map_err(|e| e.to_string())?;
                let items = body["Items"].as_array().cloned().unwrap_or_default();
                if items.len() >= videos {
                    Ok(items)
                } else {
                    Err(format!("{} of {videos} items", items.len()))
                }
            }
        },
    )
    .await
    .with_context(log)?;

    // A direct-stream range of one of them.
    let id = items[0]["Id"].as_str().context("an item id")?;
    let range = http
        .get(format!(
            "{url}/Videos/{id}/stream?static=true&ApiKey={token}"
        ))
        .header("Range", "bytes=0-99")
        .send()
        .await?;
    ensure!(
        range.status() == 206,
        "{file}: a range answers {}",
        range.status()
    );
    ensure!(
        range
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("bytes 0-99/")),
        "{file}: Content-Range {:?}",
        range.headers().get("content-range")
    );
    ensure!(range.bytes().await?.len() == 100, "{file}: 100 bytes");
    Ok(())
}

#[tokio::test]
async fn every_example_renders_a_pod_that_runs_signs_in_scans_and_streams() -> Result<()> {
    let redis = RedisGuard::start().await?;
    let mut files: Vec<String> = std::fs::read_dir(workspace().join("deploy/examples"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    ensure!(files.len() >= 3, "examples found: {files:?}");
    for file in &files {
        run_example(file, &redis)
            .await
            .with_context(|| format!("deploy/examples/{file}"))?;
    }
    Ok(())
}

/// The check above is only worth something if a key the server does not know fails it: the
/// rendered configuration of the minimal example with one unknown key added must be refused,
/// naming the key.
#[test]
fn an_unknown_key_in_the_rendered_configuration_fails_the_check() -> Result<()> {
    let text = std::fs::read_to_string(workspace().join("deploy/examples/minimal.yaml"))?;
    let objects = ephyra_operator::render::objects(&ephyra_operator::render::parse(&text)?)?;
    let maps: Vec<ConfigMap> = all(&objects, "ConfigMap")?;
    let content = maps
        .iter()
        .flat_map(|m| m.data.iter().flatten())
        .find(|(key, _)| key.ends_with(".yaml"))
        .map(|(_, value)| value.clone())
        .context("a rendered configuration file")?;
    strict_config("minimal.yaml", &content)?;
    let err = strict_config("minimal.yaml", &format!("{content}privileged: true\n"))
        .expect_err("an unknown key is refused");
    ensure!(err.to_string().contains("privileged"), "{err}");

    // And an environment variable the server does not read.
    let sets: Vec<StatefulSet> = all(&objects, "StatefulSet")?;
    let mut container =
        server_container(named(&sets, "home-server").context("server set")?)?.clone();
    known_env("minimal.yaml", &container)?;
    container.env.get_or_insert_with(Vec::new).push(EnvVar {
        name: "EPHYRA_LISTEN_ADDRESS".to_owned(),
        value: Some("0.0.0.0:8096".to_owned()),
        ..EnvVar::default()
    });
    let err = known_env("minimal.yaml", &container).expect_err("an unknown variable is refused");
    ensure!(err.to_string().contains("EPHYRA_LISTEN_ADDRESS"), "{err}");
    Ok(())
}
