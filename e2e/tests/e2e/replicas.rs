//! Three replicas over one PostgreSQL and one Redis: any replica serves any request. A login,
//! a logout, a QuickConnect pairing and a play position made on one replica hold on the others.

use std::time::{Duration, Instant};

use ephyra_e2e::LocalCluster;
use ephyra_e2e::client::TICKS_PER_SECOND;
use ephyra_e2e::cluster::{LONG_FILM, LONG_FILM_SECONDS};
use ephyra_e2e::wait::eventually;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_minted_on_one_replica_works_on_every_other() -> anyhow::Result<()> {
    let cluster = LocalCluster::start(3).await?;
    let on_a = cluster.admin(0, "token-device").await?;
    for i in 0..3 {
        let client = on_a.on(&cluster.url(i));
        let me = client.get_ok("/Users/Me").await?;
        assert_eq!(
            me["Id"].as_str(),
            on_a.user_id.as_deref(),
            "on {}",
            cluster.name(i)
        );
        assert_eq!(me["Name"], ephyra_e2e::cluster::ADMIN_USER);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_replica_is_refused_on_another_within_a_second() -> anyhow::Result<()> {
    let cluster = LocalCluster::start(3).await?;
    let on_a = cluster.admin(0, "logout-device").await?;
    let on_b = on_a.on(&cluster.url(1));
    // A has seen the token (and may cache it); so has C.
    assert_eq!(on_a.me_status().await?, StatusCode::OK);
    let on_c = on_a.on(&cluster.url(2));
    assert_eq!(on_c.me_status().await?, StatusCode::OK);

    assert_eq!(on_b.logout().await?, StatusCode::NO_CONTENT);
    let logged_out = Instant::now();
    let refused_after = eventually(
        "replica A to refuse the revoked token",
        Duration::from_secs(1),
        Duration::from_millis(20),
        || async {
            match on_a.me_status().await {
                Ok(StatusCode::UNAUTHORIZED) => Ok(logged_out.elapsed()),
                Ok(status) => Err(format!("still {status}")),
                Err(e) => Err(format!("{e:#}")),
            }
        },
    )
    .await?;
    println!("revoked token refused on the other replica after {refused_after:?}");
    assert_eq!(on_b.me_status().await?, StatusCode::UNAUTHORIZED);
    assert_eq!(on_c.me_status().await?, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_connect_initiated_on_one_replica_is_authorized_on_a_second_and_completed_on_a_third()
-> anyhow::Result<()> {
    let cluster = LocalCluster::start(3).await?;
    let tv_on_a = cluster.client(0, "tv-device");
    let request = tv_on_a.quick_connect_initiate().await?;

    let phone_on_b = cluster.admin(1, "phone-device").await?;
    assert_eq!(
        phone_on_b.quick_connect_authorize(&request.code).await?,
        StatusCode::OK
    );

    let mut tv_on_c = tv_on_a.on(&cluster.url(2));
    assert!(tv_on_c.quick_connect_state(&request.secret).await?);
    let login = tv_on_c.login_with_quick_connect(&request.secret).await?;
    assert_eq!(Some(login.user_id.as_str()), phone_on_b.user_id.as_deref());
    // The new token is a real login, valid everywhere.
    for i in 0..3 {
        assert_eq!(
            tv_on_c.on(&cluster.url(i)).me_status().await?,
            StatusCode::OK
        );
    }
    // A secret is redeemed once.
    let mut again = cluster.client(0, "tv-device");
    assert!(
        again
            .login_with_quick_connect(&request.secret)
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_reported_on_one_replica_is_read_back_on_another() -> anyhow::Result<()> {
    let cluster = LocalCluster::start(3).await?;
    let on_a = cluster.admin(0, "position-device").await?;
    let film = cluster.wait_for_film(&on_a, LONG_FILM).await?;
    let position = i64::from(LONG_FILM_SECONDS / 2) * TICKS_PER_SECOND;

    on_a.report_start(&film).await?;
    on_a.report_progress(&film, position).await?;

    // Acknowledged means durable: B reads it at once, without waiting.
    let on_b = on_a.on(&cluster.url(1));
    assert_eq!(on_b.position(&film).await?, position);
    assert!(
        on_b.resume_ids().await?.contains(&film),
        "the film is not in B's Continue watching"
    );
    Ok(())
}
