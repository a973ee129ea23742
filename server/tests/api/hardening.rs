//! The bounds set against an outside audit's abuse paths, each tested with the
//! attack it answers: invented HTTP methods and metrics, QuickConnect floods and code
//! guessing (in process and across replicas in Redis), oversized and ping-only WebSockets,
//! sockets per token, sockets of revoked tokens on every replica, the listener's timeouts and
//! per-address connection cap, and private files in the data folder.
//! The memory ceilings under attack are measured over the built binary in `e2e/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use ephyra_config::{Secret, ServerConfig};
use ephyra_server::AppState;
use ephyra_server::auth::TrustedProxies;
use ephyra_server::coord::Revocation;
use ephyra_server::coord::quickconnect::{
    AUTHORIZE_PER_USER, INITIATE_PER_ADDRESS, MAX_FIELD_BYTES, MAX_PENDING,
};
use ephyra_server::listener::ConnectionLimits;
use ephyra_testsupport::redis::RedisGuard;
use futures::{SinkExt as _, StreamExt as _};
use http::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::support::{Provider, Reply, TestServer, client_on, request, test_config, with_token};

/// Upper bound for anything the server should do promptly; never a wait for a fixed time.
const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `check` until it holds or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    ephyra_testsupport::wait::until("the condition", within, || {
        let step = check();
        async { Ok(step.await?.then_some(())) }
    })
    .await
}

/// Sends a request as if it came over TCP from `peer`.
async fn send_from(server: &TestServer, peer: &str, mut req: http::Request<Body>) -> Result<Reply> {
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(peer.parse()?, 50_000)));
    server.send(req).await
}

/// Serves `router` through the public listener with `limits`; cancel the token to stop.
async fn listen(
    router: Router,
    limits: ConnectionLimits,
) -> Result<(SocketAddr, CancellationToken)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    tokio::spawn(ephyra_server::listener::serve(
        listener,
        router,
        Arc::new(TrustedProxies::default()),
        limits,
        stop.clone(),
    ));
    Ok((addr, stop))
}

/// Serves a whole app state through the public listener with its default limits.
async fn serve_state(state: AppState) -> Result<(SocketAddr, CancellationToken)> {
    listen(ephyra_server::app(state), ConnectionLimits::default()).await
}

#[tokio::test]
async fn invented_methods_do_not_grow_the_metrics() -> Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    server.get("/nowhere", None).await?;
    let before = server.state.metrics.encode().len();
    for i in 0..3000 {
        let method = Method::from_bytes(format!("INVENTED{i}").as_bytes())?;
        server
            .send(request(method, "/nowhere", None, None)?)
            .await?;
    }
    let text = server.state.metrics.encode();
    assert!(
        text.len() < before + 2048,
        "/metrics grew from {before} to {} bytes",
        text.len()
    );
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(!text.contains("INVENTED"), "a client-chosen label leaked");
    Ok(())
}

#[tokio::test]
async fn quick_connect_refuses_oversized_device_fields() -> Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    let long = "x".repeat(MAX_FIELD_BYTES + 1);
    let header = format!(r#"MediaBrowser Client="c", Device="{long}", DeviceId="d", Version="1""#);
    let reply = server
        .post("/QuickConnect/Initiate", Some(&header), None)
        .await?;
    reply.assert_error(StatusCode::BAD_REQUEST)?;
    assert!(
        reply.json()?["Message"]
            .as_str()
            .unwrap_or("")
            .contains("Device")
    );
    // Logins keep the same fields with the token: the same bound.
    server.user("alice", "pw", false).await?;
    server
        .post(
            "/Users/AuthenticateByName",
            Some(&header),
            Some(json!({"Username": "alice", "Pw": "pw"})),
        )
        .await?
        .assert_error(StatusCode::BAD_REQUEST)?;
    Ok(())
}

/// Initiates from `peer`; the reply.
async fn initiate_from(server: &TestServer, peer: &str, device: &str) -> Result<Reply> {
    send_from(
        server,
        peer,
        request(
            Method::POST,
            "/QuickConnect/Initiate",
            Some(&client_on(device)),
            None,
        )?,
    )
    .await
}

/// Authorizes `code` with `token` from `peer`; the reply.
async fn authorize_from(server: &TestServer, peer: &str, token: &str, code: &str) -> Result<Reply> {
    send_from(
        server,
        peer,
        request(
            Method::POST,
            &format!("/QuickConnect/Authorize?code={code}"),
            Some(&with_token(token)),
            None,
        )?,
    )
    .await
}

/// A code that is not `code`.
fn other_code(code: &str, i: u32) -> String {
    let n: u32 = code.parse().unwrap_or(0);
    format!("{:06}", (n + 1 + i) % 1_000_000)
}

/// The checks shared by the in-process and Redis providers: `servers` are replicas (one, or
/// several on one Redis), requests go round-robin.
async fn quick_connect_limits_hold(servers: &[&TestServer]) -> Result<()> {
    let at = |i: usize| servers[i % servers.len()];
    // Initiation: INITIATE_PER_ADDRESS per address, whichever replica answers.
    let mut first = None;
    for i in 0..INITIATE_PER_ADDRESS as usize {
        let reply = initiate_from(at(i), "203.0.113.5", &format!("tv-{i}")).await?;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        first.get_or_insert(reply.json()?);
    }
    let refused = initiate_from(at(0), "203.0.113.5", "tv-x").await?;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS)?;
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(
        initiate_from(at(1), "203.0.113.6", "tv-y").await?.status,
        StatusCode::OK,
        "another address is not limited"
    );

    // Authorization: the first one is final.
    let first = first.context("a request")?;
    let code = first["Code"].as_str().context("code")?.to_owned();
    let secret = first["Secret"].as_str().context("secret")?.to_owned();
    at(0).user("owner", "owner-pw", false).await?;
    at(0).user("intruder", "intruder-pw", false).await?;
    let owner = at(0).login("owner", "owner-pw").await?;
    let intruder = at(0).login("intruder", "intruder-pw").await?;
    let approved = authorize_from(at(0), "198.51.100.1", &owner, &code).await?;
    assert_eq!(approved.status, StatusCode::OK, "{approved:?}");
    authorize_from(at(1), "198.51.100.2", &intruder, &code)
        .await?
        .assert_error(StatusCode::CONFLICT)?;
    let login = at(1)
        .post(
            "/Users/AuthenticateWithQuickConnect",
            None,
            Some(json!({"Secret": secret})),
        )
        .await?;
    assert_eq!(login.status, StatusCode::OK, "{login:?}");
    let owner_id = at(0)
        .state
        .store
        .user_by_name("owner")
        .await?
        .context("owner")?
        .id;
    assert_eq!(login.json()?["User"]["Id"], owner_id.to_n());

    // Guessing: AUTHORIZE_PER_USER attempts per user (the refused one above counted), hits or
    // misses, on any replica.
    for i in 1..AUTHORIZE_PER_USER {
        let reply = authorize_from(
            at(i as usize),
            "198.51.100.2",
            &intruder,
            &other_code(&code, i),
        )
        .await?;
        // A guess may even hit another pending request: that is what the limit bounds.
        ensure!(
            matches!(
                reply.status,
                StatusCode::NOT_FOUND | StatusCode::CONFLICT | StatusCode::OK
            ),
            "guess {i}: {reply:?}"
        );
    }
    authorize_from(at(0), "198.51.100.2", &intruder, &code)
        .await?
        .assert_error(StatusCode::TOO_MANY_REQUESTS)?;
    Ok(())
}

#[tokio::test]
async fn quick_connect_is_limited_per_address_per_user_and_authorized_once_in_process() -> Result<()>
{
    let server = TestServer::new(Provider::Sqlite).await?;
    quick_connect_limits_hold(&[&server]).await
}

/// `n` replicas on one fresh PostgreSQL database and one Redis.
async fn replicas(redis: &RedisGuard, n: usize) -> Result<Vec<TestServer>> {
    let first = tempfile::tempdir()?;
    let mut config = test_config(Provider::Postgres, first.path()).await?;
    config.redis.url = Some(Secret::new(redis.url()));
    config.coordination.lease_millis = 1500;
    config.coordination.renew_millis = 200;
    let mut servers = vec![TestServer::from_config(config.clone(), first).await?];
    for _ in 1..n {
        let dir = tempfile::tempdir()?;
        let config = ServerConfig {
            data_dir: dir.path().to_owned(),
            ..config.clone()
        };
        servers.push(TestServer::from_config(config, dir).await?);
    }
    Ok(servers)
}

#[tokio::test]
async fn quick_connect_limits_hold_across_replicas_in_redis() -> Result<()> {
    let redis = RedisGuard::start().await?;
    let servers = replicas(&redis, 2).await?;
    quick_connect_limits_hold(&[&servers[0], &servers[1]]).await?;

    // The cap on pending requests is shared: with MAX_PENDING pending, the next is refused
    // with 503, without touching the code space.
    let mut conn = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let far = chrono::Utc::now().timestamp_millis() + 600_000;
    let mut fill = redis::pipe();
    for i in 0..MAX_PENDING {
        fill.zadd("ephyra:qc:pending", format!("filler-{i}"), far)
            .ignore();
    }
    let () = fill.query_async(&mut conn).await?;
    let refused = initiate_from(&servers[0], "192.0.2.50", "tv-full").await?;
    refused.assert_error(StatusCode::SERVICE_UNAVAILABLE)?;
    assert!(refused.headers.contains_key("retry-after"));
    let () = redis::cmd("DEL")
        .arg("ephyra:qc:pending")
        .query_async(&mut conn)
        .await?;
    assert_eq!(
        initiate_from(&servers[1], "192.0.2.50", "tv-room")
            .await?
            .status,
        StatusCode::OK
    );
    Ok(())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(addr: SocketAddr, token: &str) -> Result<Socket> {
    let (socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket?api_key={token}")).await?;
    Ok(socket)
}

/// Waits until the server ends `socket` (close frame, end of stream or error); pings it
/// every `ping_every` meanwhile when given. Fails if it stays open past `within`.
async fn wait_closed(
    socket: &mut Socket,
    within: Duration,
    ping_every: Option<Duration>,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    let mut pings = tokio::time::interval(ping_every.unwrap_or(within));
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => anyhow::bail!("the socket stayed open for {within:?}"),
            _ = pings.tick(), if ping_every.is_some() => {
                if socket.send(Message::Ping(Bytes::from_static(b"hi"))).await.is_err() {
                    return Ok(());
                }
            }
            frame = socket.next() => match frame {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}

#[tokio::test]
async fn an_oversized_socket_message_closes_the_socket() -> Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    let (_, token) = server.viewer().await?;
    let (addr, _stop) = serve_state(server.state.clone()).await?;
    let mut socket = open_socket(addr, &token).await?;
    let big = "x".repeat(ephyra_server::api::sessions::MAX_SOCKET_MESSAGE_BYTES + 1);
    // The send itself may fail once the server has closed.
    let _ = socket.send(Message::Text(big.into())).await;
    wait_closed(&mut socket, PATIENCE, None).await?;
    // A normal socket is unaffected.
    let mut ok = open_socket(addr, &token).await?;
    ok.send(Message::Text(
        json!({"MessageType": "KeepAlive"}).to_string().into(),
    ))
    .await?;
    let mut answered = false;
    while let Some(frame) = tokio::time::timeout(PATIENCE, ok.next()).await? {
        if let Message::Text(t) = frame?
            && t.contains("\"KeepAlive\"")
        {
            answered = true;
            break;
        }
    }
    assert!(answered);
    Ok(())
}

#[tokio::test]
async fn pings_alone_do_not_keep_a_silent_socket_open() -> Result<()> {
    let mut server = TestServer::new(Provider::Sqlite).await?;
    server.state = server
        .state
        .clone()
        .with_socket_timeout(Duration::from_secs(1));
    let (_, token) = server.viewer().await?;
    let (addr, _stop) = serve_state(server.state.clone()).await?;
    let mut socket = open_socket(addr, &token).await?;
    wait_closed(&mut socket, PATIENCE, Some(Duration::from_millis(100))).await
}

#[tokio::test]
async fn a_token_holds_a_bounded_number_of_sockets() -> Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    let (_, token) = server.viewer().await?;
    let (addr, _stop) = serve_state(server.state.clone()).await?;
    let mut open = Vec::new();
    for _ in 0..ephyra_server::sessions::SOCKETS_PER_TOKEN {
        open.push(open_socket(addr, &token).await?);
    }
    match open_socket(addr, &token).await {
        Err(e) => match e.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            Some(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429);
            }
            _ => anyhow::bail!("expected an HTTP 429, got {e}"),
        },
        Ok(_) => anyhow::bail!("a socket beyond the cap was accepted"),
    }
    // Closing one makes room again.
    let mut closing = open.pop().context("a socket")?;
    closing.close(None).await?;
    eventually(PATIENCE, || async {
        Ok(open_socket(addr, &token).await.is_ok())
    })
    .await
}

#[tokio::test]
async fn logout_closes_the_tokens_socket_and_another_login_does_not() -> Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    let (viewer, token) = server.viewer().await?;
    let (addr, _stop) = serve_state(server.state.clone()).await?;
    let mut socket = open_socket(addr, &token).await?;
    eventually(PATIENCE, || async {
        Ok(server.state.sessions.open_sockets() == 1)
    })
    .await?;

    // A login on another device revokes cached lookups of the user, not this token.
    server
        .login_from("viewer", "viewer-pass", &client_on("dev-phone"))
        .await?;
    let closed = server
        .state
        .sessions
        .close_revoked(Revocation::User(viewer.id), &server.state.store)
        .await;
    assert_eq!(closed, 0);

    let out = server
        .post("/Sessions/Logout", Some(&with_token(&token)), None)
        .await?;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    wait_closed(&mut socket, PATIENCE, None).await
}

#[tokio::test]
async fn a_revoked_tokens_socket_closes_on_every_replica() -> Result<()> {
    let redis = RedisGuard::start().await?;
    let servers = replicas(&redis, 2).await?;
    let (a, b) = (&servers[0], &servers[1]);
    a.user("viewer", "viewer-pass", false).await?;
    let token = a.login("viewer", "viewer-pass").await?;
    let (addr, _stop) = serve_state(b.state.clone()).await?;
    let mut socket = open_socket(addr, &token).await?;
    eventually(PATIENCE, || async {
        Ok(b.state.sessions.open_sockets() == 1)
    })
    .await?;

    let out = a
        .post("/Sessions/Logout", Some(&with_token(&token)), None)
        .await?;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    wait_closed(&mut socket, PATIENCE, None).await?;
    eventually(PATIENCE, || async {
        Ok(b.state.sessions.open_sockets() == 0)
    })
    .await
}

/// A router for the listener tests: a small answer, a large streamed body, a body reader.
fn test_router(big_bytes: usize) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/big",
            get(move || async move {
                let chunk = Bytes::from(vec![7u8; 64 * 1024]);
                let chunks = big_bytes.div_ceil(chunk.len());
                Body::from_stream(futures::stream::iter(
                    (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                ))
            }),
        )
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
}

/// Reads until the peer closes (`Ok(bytes read)`), or fails after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Result<usize> {
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    };
    tokio::time::timeout(within, read_all)
        .await
        .context("the server kept the connection open")
}

#[tokio::test]
async fn a_request_head_sent_byte_by_byte_is_cut_after_the_header_timeout() -> Result<()> {
    let limits = ConnectionLimits {
        header_read: Duration::from_secs(1),
        ..ConnectionLimits::default()
    };
    let (addr, _stop) = listen(test_router(0), limits).await?;
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await?;
    let started = Instant::now();
    // Keep trickling header bytes: progress must not extend the deadline.
    let trickle = async {
        for _ in 0..100 {
            if stream.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let _ = tokio::time::timeout(PATIENCE, trickle).await;
    let _ = read_until_closed(&mut stream, PATIENCE).await?;
    assert!(
        started.elapsed() < PATIENCE,
        "cut only after {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() -> Result<()> {
    let limits = ConnectionLimits {
        header_read: Duration::from_secs(1),
        ..ConnectionLimits::default()
    };
    let (addr, _stop) = listen(test_router(0), limits).await?;
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    // The answer comes, then the connection closes once idle.
    let read = read_until_closed(&mut stream, PATIENCE).await?;
    assert!(read > 0, "no answer before the close");
    Ok(())
}

#[tokio::test]
async fn a_stalled_request_body_ends_the_request() -> Result<()> {
    let limits = ConnectionLimits {
        body_stall: Duration::from_secs(1),
        ..ConnectionLimits::default()
    };
    let (addr, _stop) = listen(test_router(0), limits).await?;
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly a little")
        .await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
        .await
        .context("the handler still waits for the body")??;
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(
        n == 0 || !head.starts_with("HTTP/1.1 200"),
        "a stalled body was accepted: {head}"
    );
    Ok(())
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_a_slow_one_is_not() -> Result<()> {
    const BIG: usize = 64 * 1024 * 1024;
    const SLOW: usize = 8 * 1024 * 1024;
    let limits = ConnectionLimits {
        write_stall: Duration::from_secs(1),
        ..ConnectionLimits::default()
    };
    let (addr, _stop) = listen(test_router(BIG), limits.clone()).await?;
    let mut stalled = TcpStream::connect(addr).await?;
    stalled
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    // Not reading at all, for three times the stall limit (a wait that is the point of the
    // test, not a guess at how long something takes).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let read = read_until_closed(&mut stalled, PATIENCE * 3).await?;
    assert!(
        read < BIG,
        "the whole body went to a client that stopped reading"
    );

    // A reader that is slow but keeps reading gets everything.
    let limits = ConnectionLimits {
        write_stall: Duration::from_secs(2),
        ..limits
    };
    let (addr, _stop) = listen(test_router(SLOW), limits).await?;
    let mut slow = TcpStream::connect(addr).await?;
    slow.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut total = 0;
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = tokio::time::timeout(PATIENCE, slow.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        total += n;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(total > SLOW, "the slow reader got {total} bytes of {SLOW}");
    Ok(())
}

#[tokio::test]
async fn three_hundred_half_open_connections_from_one_address_do_not_starve_another() -> Result<()>
{
    let limits = ConnectionLimits {
        per_address: 16,
        ..ConnectionLimits::default()
    };
    let (addr, _stop) = listen(test_router(0), limits).await?;
    let attacker: std::net::IpAddr = "127.0.0.2".parse()?;
    let mut held = Vec::new();
    for _ in 0..300 {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(attacker, 0))?;
        let mut stream = socket.connect(addr).await?;
        // Half a request head, never finished.
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        held.push(stream);
    }
    // The legitimate client is answered at once.
    let started = Instant::now();
    let mut client = TcpStream::connect(addr).await?;
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = String::new();
    tokio::time::timeout(PATIENCE, client.read_to_string(&mut answer)).await??;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < PATIENCE);

    // Of the attacker's connections, only the cap stays open.
    let still_open = futures::future::join_all(held.iter_mut().map(|s| async move {
        let mut byte = [0u8; 1];
        // Still open: nothing to read within the wait (a closed one reads EOF at once).
        tokio::time::timeout(Duration::from_secs(2), s.read(&mut byte))
            .await
            .is_err()
    }))
    .await
    .into_iter()
    .filter(|open| *open)
    .count();
    assert!(
        still_open <= 16,
        "{still_open} connections from one address stayed open"
    );
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_and_the_database_are_private() -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir()?;
    let mut config = test_config(Provider::Sqlite, dir.path()).await?;
    let data = dir.path().join("fresh").join("data");
    config.data_dir = data.clone();
    config.database.url = Some(Secret::new(format!(
        "sqlite://{}?mode=rwc",
        data.join("ephyra.db").display()
    )));
    let state = ephyra_server::start(config).await?;
    state.store.count_users().await?;
    let mode = |p: &std::path::Path| -> Result<u32> {
        Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
    };
    assert_eq!(mode(&data)?, 0o700, "data folder");
    assert_eq!(mode(&data.join("ephyra.db"))?, 0o600, "database");
    let wal = data.join("ephyra.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal)?, 0o600, "write-ahead log");
    }
    Ok(())
}
