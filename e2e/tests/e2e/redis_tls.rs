//! Redis over TLS with a password (`rediss://:password@host:port`), as a managed Redis service
//! offers it: two replicas built from the real binaries reach a TLS-only, password-protected
//! `redis-server` (its certificate signed by a CA the test makes with `openssl`, trusted by the
//! replicas through `SSL_CERT_FILE`), elect one leader, and share a token revocation.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ephyra_e2e::LocalCluster;
use ephyra_e2e::cluster::{ADMIN_PASSWORD, ADMIN_USER};

const PASSWORD: &str = "tlsRedisPassw0rd";

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("openssl runs")?;
    ensure!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A CA, and a server certificate for `localhost`/127.0.0.1 signed by it.
fn certificates(dir: &Path) -> Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ephyra-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    )?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "redis.key",
            "-out",
            "redis.csr",
        ],
    )?;
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "redis.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "redis.pem",
        ],
    )
}

#[tokio::test]
async fn replicas_reach_a_tls_redis_with_a_password_elect_a_leader_and_share_revocations()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    certificates(dir.path())?;
    let port = ephyra_testsupport::net::free_port()?;
    let _redis = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "redis.pem",
            "--tls-key-file",
            "redis.key",
        ])
        .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
        .args([
            "--requirepass",
            PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("redis-server starts")?;
    let started = Instant::now();
    loop {
        let ping = tokio::process::Command::new("redis-cli")
            .args(["--tls", "--cacert", "ca.pem", "-h", "localhost", "-p"])
            .arg(port.to_string())
            .arg("ping")
            .env("REDISCLI_AUTH", PASSWORD)
            .current_dir(dir.path())
            .output()
            .await?;
        if String::from_utf8_lossy(&ping.stdout).contains("PONG") {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the TLS Redis did not answer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ca = dir.path().join("ca.pem").display().to_string();
    let cluster = LocalCluster::builder(2)
        .env(
            "EPHYRA_REDIS_URL",
            format!("rediss://:{PASSWORD}@localhost:{port}"),
        )
        .env("SSL_CERT_FILE", ca)
        .start()
        .await?;
    cluster.wait_leader(Duration::from_secs(30)).await?;
    // A follower's first Redis command may still be on its way: poll each replica.
    for i in 0..2 {
        let started = Instant::now();
        loop {
            let ready = cluster.readiness(i).await.context("readiness answers")?;
            let redis = ephyra_e2e::cluster::field(&ready.body, "redis").cloned();
            if redis == Some(serde_json::json!("ok")) {
                break;
            }
            ensure!(
                started.elapsed() < Duration::from_secs(30),
                "replica {i} does not reach the TLS Redis: {}",
                ready.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut a = cluster.client(0, "tls-a");
    let login = a.login(ADMIN_USER, ADMIN_PASSWORD).await?;
    ensure!(!login.token.is_empty());
    let b = a.on(&cluster.url(1));
    ensure!(b.me_status().await? == reqwest::StatusCode::OK);
    a.logout().await?;
    let started = Instant::now();
    while b.me_status().await? != reqwest::StatusCode::UNAUTHORIZED {
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the revocation did not cross the TLS Redis"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
