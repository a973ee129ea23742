//! nginx, the baseline: a fixed JSON body the size of a `/Users/Me` answer (the floor of
//! wrk + loopback + a fast C server on this machine) and the film ephyra streams, sent with
//! `sendfile`. Runs in the foreground in a folder of its own, tied to this process.
//!
//! It serves the baseline and nothing else: no ephyra request goes through it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use ephyra_testsupport::ChildGuard;
use ephyra_testsupport::net::free_port;
use ephyra_testsupport::process::{spawn_tied, tied_command};
use tempfile::TempDir;

/// The fixed body: what `/Users/Me` answers, in size and shape.
const FLOOR_JSON: &str = r#"{"Name":"bench","ServerId":"0123456789abcdef0123456789abcdef","Id":"0123456789abcdef0123456789abcdef","HasPassword":true,"HasConfiguredPassword":true,"EnableAutoLogin":false,"Policy":{"IsAdministrator":true,"IsDisabled":false,"EnableAllFolders":true},"Configuration":{"PlayDefaultAudioTrack":true,"SubtitleMode":"Default"}}"#;

/// A running nginx. Killed when dropped.
#[derive(Debug)]
pub struct Nginx {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port, for HAProxy in front of it.
    pub port: u16,
    _child: ChildGuard<std::process::Child>,
    _dir: TempDir,
}

/// The nginx binary: on PATH, or in /usr/sbin where Debian puts it.
pub fn binary() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nginx"))
            .find(|candidate| candidate.is_file())
    });
    let sbin = PathBuf::from("/usr/sbin/nginx");
    on_path
        .or_else(|| sbin.is_file().then_some(sbin))
        .context("nginx is not installed: run scripts/ensure-deps.sh (make bench does)")
}

impl Nginx {
    /// Starts nginx serving `/floor.json`, `/static.mkv` (a link to `film`) and
    /// `/health/ready` (for HAProxy's check), and waits until it answers.
    pub async fn start(film: &Path) -> anyhow::Result<Nginx> {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::Builder::new()
            .prefix("ephyra-bench-nginx-")
            .tempdir()?;
        // As root, nginx's workers run as nobody: they must reach the folder and the file.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let served = dir.path().join("static.mkv");
        if std::fs::hard_link(film, &served).is_err() {
            std::fs::copy(film, &served)?;
        }
        std::fs::set_permissions(&served, std::fs::Permissions::from_mode(0o644))?;
        let port = free_port()?;
        let d = dir.path().display();
        let config = format!(
            r#"worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /floor.json {{
            default_type application/json;
            return 200 '{FLOOR_JSON}';
        }}
        location = /health/ready {{
            return 200 'ok';
        }}
        location = /static.mkv {{
            alias {d}/static.mkv;
        }}
    }}
}}
"#
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("stdout.log"))?;
        let mut command = tied_command(binary()?);
        command
            .arg("-e")
            .arg("stderr")
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(dir.path())
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let child = spawn_tied(command)?;
        let nginx = Nginx {
            url: format!("http://127.0.0.1:{port}"),
            port,
            _child: child,
            _dir: dir,
        };
        let floor = format!("{}/floor.json", nginx.url);
        ephyra_e2e::wait::eventually(
            "nginx to answer",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || async {
                match reqwest::get(&floor).await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(r.status().to_string()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
        Ok(nginx)
    }
}
