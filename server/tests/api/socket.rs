//! The `/socket` WebSocket over a real TCP connection: authentication before the upgrade,
//! ForceKeepAlive on connect, KeepAlive answered, silent sockets dropped, pushed messages.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use ephyra_server::AppState;
use ephyra_server::sessions::Outbound;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::support::{Provider, TestServer, with_token};

/// Upper bound for anything the server should do at once; never a wait for a fixed time.
const PATIENCE: Duration = Duration::from_secs(10);

async fn serve(state: AppState) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = ephyra_server::app(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(socket: &mut Socket) -> Result<Value> {
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .context("no message in time")?
            .context("socket ended")??;
        match frame {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Ping(_) | Message::Pong(_) => {}
            other => anyhow::bail!("unexpected frame {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_socket_refuses_a_handshake_without_a_valid_token() -> Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    let addr = serve(server.state.clone()).await?;
    for uri in [
        format!("ws://{addr}/socket"),
        format!("ws://{addr}/socket?api_key=0123456789abcdef0123456789abcdef"),
    ] {
        let err = tokio_tungstenite::connect_async(uri).await.unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                assert_eq!(response.status(), 401);
            }
            other => anyhow::bail!("expected an HTTP 401, got {other}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_socket_sends_force_keep_alive_and_answers_keep_alive() -> Result<()> {
    for provider in [Provider::Sqlite, Provider::Postgres] {
        let server = TestServer::new(provider).await?;
        let (_, token) = server.viewer().await?;
        let addr = serve(server.state.clone()).await?;

        // The web client's legacy form: token and device in the query.
        let (mut socket, _) = tokio_tungstenite::connect_async(format!(
            "ws://{addr}/socket?api_key={token}&deviceId=dev-viewer"
        ))
        .await?;
        let hello = next_json(&mut socket).await?;
        assert_eq!(hello["MessageType"], "ForceKeepAlive");
        assert_eq!(hello["Data"], 60);
        assert_eq!(hello["MessageId"].as_str().map(str::len), Some(32));

        socket
            .send(Message::text(
                json!({"MessageType": "SessionsStart", "Data": "0,1500"}).to_string(),
            ))
            .await?;
        socket
            .send(Message::text(
                json!({"MessageType": "KeepAlive"}).to_string(),
            ))
            .await?;
        let answer = next_json(&mut socket).await?;
        assert_eq!(answer["MessageType"], "KeepAlive");
        socket.close(None).await?;

        // The Python and Kotlin clients' form: the token in the Authorization header.
        let mut req = format!("ws://{addr}/SOCKET").into_client_request()?;
        req.headers_mut()
            .insert("Authorization", with_token(&token).parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(req).await?;
        assert_eq!(
            next_json(&mut socket).await?["MessageType"],
            "ForceKeepAlive"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_silent_socket_is_reminded_and_then_dropped() -> Result<()> {
    let mut server = TestServer::new(Provider::Sqlite).await?;
    server.state = server
        .state
        .clone()
        .with_socket_timeout(Duration::from_secs(1));
    let (_, token) = server.viewer().await?;
    let addr = serve(server.state.clone()).await?;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket?ApiKey={token}")).await?;
    let hello = next_json(&mut socket).await?;
    assert_eq!(hello["Data"], 1);
    // Stay silent: a reminder comes first, then the server closes.
    let reminder = next_json(&mut socket).await?;
    assert_eq!(reminder["MessageType"], "ForceKeepAlive");
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the server kept a silent socket open");
    Ok(())
}

#[tokio::test]
async fn messages_for_a_user_reach_that_users_socket_only() -> Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    let (viewer, viewer_token) = server.viewer().await?;
    let (_, admin_token) = server.admin().await?;
    let addr = serve(server.state.clone()).await?;
    let (mut mine, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket?ApiKey={viewer_token}"))
            .await?;
    let (mut theirs, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket?ApiKey={admin_token}"))
            .await?;
    next_json(&mut mine).await?;
    next_json(&mut theirs).await?;
    server.state.sessions.notify(Outbound {
        user: Some(viewer.id),
        message_type: "UserDataChanged".to_owned(),
        data: json!({"UserId": viewer.id.to_n()}),
    });
    server.state.sessions.notify(Outbound {
        user: None,
        message_type: "LibraryChanged".to_owned(),
        data: json!({}),
    });
    assert_eq!(
        next_json(&mut mine).await?["MessageType"],
        "UserDataChanged"
    );
    assert_eq!(next_json(&mut mine).await?["MessageType"], "LibraryChanged");
    assert_eq!(
        next_json(&mut theirs).await?["MessageType"],
        "LibraryChanged"
    );
    Ok(())
}

#[tokio::test]
async fn open_sockets_are_closed_when_the_server_shuts_down() -> Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    let (_, token) = server.viewer().await?;
    let addr = serve(server.state.clone()).await?;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket?ApiKey={token}")).await?;
    next_json(&mut socket).await?;
    server.state.begin_shutdown();
    assert_eq!(
        next_json(&mut socket).await?["MessageType"],
        "ServerShuttingDown"
    );
    Ok(())
}

#[tokio::test]
async fn an_administrator_subscribed_to_scheduled_tasks_gets_the_running_scans_progress()
-> Result<()> {
    for provider in [Provider::Sqlite, Provider::Postgres] {
        let server = TestServer::new(provider).await?;
        let store = &server.state.store;
        store
            .enqueue(&ephyra_server::jobs::kinds::library_scan())
            .await?;
        let job = store
            .claim_job("replica-b/0", Duration::from_secs(30))
            .await?
            .context("a job")?;
        let progress = ephyra_server::store::jobs::Progress {
            done: 30,
            total: 40,
        };
        assert!(store.set_job_progress(&job, progress).await?);
        let (_, admin) = server.admin().await?;
        let (_, viewer) = server.viewer().await?;
        let addr = serve(server.state.clone()).await?;
        let start = json!({"MessageType": "ScheduledTasksInfoStart", "Data": "0,500"}).to_string();

        let (mut socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/socket?api_key={admin}")).await?;
        assert_eq!(
            next_json(&mut socket).await?["MessageType"],
            "ForceKeepAlive"
        );
        socket.send(Message::text(start.clone())).await?;
        let info = next_json(&mut socket).await?;
        assert_eq!(info["MessageType"], "ScheduledTasksInfo", "{info}");
        let scan = &info["Data"][0];
        assert_eq!(scan["Key"], "RefreshLibrary", "{info}");
        assert_eq!(scan["State"], "Running", "{info}");
        assert_eq!(scan["CurrentProgressPercentage"], 75.0, "{info}");
        socket
            .send(Message::text(
                json!({"MessageType": "ScheduledTasksInfoStop"}).to_string(),
            ))
            .await?;
        socket.close(None).await?;

        // Not for other users: their socket answers KeepAlive and sends no task list.
        let (mut socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/socket?api_key={viewer}"))
                .await?;
        assert_eq!(
            next_json(&mut socket).await?["MessageType"],
            "ForceKeepAlive"
        );
        socket.send(Message::text(start)).await?;
        socket
            .send(Message::text(
                json!({"MessageType": "KeepAlive"}).to_string(),
            ))
            .await?;
        assert_eq!(next_json(&mut socket).await?["MessageType"], "KeepAlive");
    }
    Ok(())
}
