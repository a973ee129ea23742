use super::*;

fn load(pairs: MapSource) -> Result<ServerConfig, ConfigError> {
    ServerConfig::load(None, &pairs)
}

#[test]
fn defaults_give_a_single_replica_on_sqlite_under_the_data_folder() {
    let config = load(MapSource::new()).unwrap();
    assert_eq!(config.listen.port(), 8096);
    assert_eq!(config.database.kind(), Some(DatabaseKind::Sqlite));
    assert_eq!(
        config.database.url().unwrap().expose(),
        "sqlite://./data/ephyra.db?mode=rwc"
    );
    assert_eq!(config.transcode_dir(), PathBuf::from("./data/transcode"));
    assert!(config.redis.url.is_none());
    assert!(config.cluster.is_none());
}

#[test]
fn environment_overrides_every_documented_key() {
    let env = MapSource::from([
        ("EPHYRA_LISTEN", "127.0.0.1:18096"),
        ("EPHYRA_ADMIN_LISTEN", "127.0.0.1:19096"),
        ("EPHYRA_DATA_DIR", "/var/lib/ephyra"),
        ("EPHYRA_DATABASE_URL", "postgres://ephyra:pw@db:5432/ephyra"),
        ("EPHYRA_REDIS_URL", "redis://redis:6379"),
        ("EPHYRA_TRANSCODE_DIR", "/transcode"),
        (
            "EPHYRA_LIBRARIES",
            "movies:Films=/media/films;tvshows:Series=/media/series,/more",
        ),
        ("EPHYRA_ADMIN_USER", "root"),
        ("EPHYRA_ADMIN_PASSWORD", "hunter2"),
        ("EPHYRA_HWACCEL", "vaapi"),
        ("EPHYRA_CLUSTER_NAME", "home"),
        ("POD_NAMESPACE", "media"),
        ("POD_NAME", "home-server-1"),
        ("EPHYRA_LOG_FORMAT", "json"),
        ("EPHYRA_JOB_WORKERS", "5"),
        ("EPHYRA_JOB_VISIBILITY_SECONDS", "12"),
        ("EPHYRA_WEB_DIR", "/srv/jellyfin-web"),
    ]);
    let config = load(env).unwrap();
    assert_eq!(config.web.dir, Some(PathBuf::from("/srv/jellyfin-web")));
    assert_eq!(config.listen, "127.0.0.1:18096".parse().unwrap());
    assert_eq!(config.admin_listen, "127.0.0.1:19096".parse().unwrap());
    assert_eq!(config.database.kind(), Some(DatabaseKind::Postgres));
    assert_eq!(config.transcode_dir(), PathBuf::from("/transcode"));
    assert_eq!(config.libraries.len(), 2);
    assert_eq!(config.libraries[1].kind, LibraryKind::Tvshows);
    assert_eq!(config.libraries[1].folders.len(), 2);
    assert_eq!(config.admin.as_ref().unwrap().user, "root");
    assert_eq!(config.hardware_acceleration.kind, HwAccelKind::Vaapi);
    let cluster = config.cluster.unwrap();
    assert_eq!(
        (cluster.namespace.as_str(), cluster.pod_name.as_str()),
        ("media", "home-server-1")
    );
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(
        (config.jobs.workers, config.jobs.visibility_seconds),
        (Some(5), Some(12))
    );
}

#[test]
fn redis_with_sqlite_is_refused_with_a_clear_message() {
    let err = load(MapSource::from([(
        "EPHYRA_REDIS_URL",
        "redis://localhost:6379",
    )]))
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("EPHYRA_REDIS_URL"), "{text}");
    assert!(text.contains("need PostgreSQL"), "{text}");
}

#[test]
fn errors_name_the_offending_key() {
    let cases: &[(&str, &str)] = &[
        ("EPHYRA_LISTEN", "not-an-address"),
        ("EPHYRA_DATABASE_URL", "mysql://u:secretpw@h/db"),
        ("EPHYRA_LIBRARIES", "music:Songs=/m"),
        ("EPHYRA_HWACCEL", "quantum"),
        ("EPHYRA_DATABASE_MAX_CONNECTIONS", "-3"),
        ("EPHYRA_DISCOVERY", "maybe"),
        ("EPHYRA_LOG_FORMAT", "xml"),
    ];
    for (key, value) in cases {
        let err = load(MapSource::new().with(key, *value)).unwrap_err();
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}

#[test]
fn secrets_never_appear_in_debug_or_errors() {
    let env = MapSource::from([
        (
            "EPHYRA_DATABASE_URL",
            "postgres://ephyra:s3cr3t-pw@db/ephyra",
        ),
        ("EPHYRA_ADMIN_USER", "root"),
        ("EPHYRA_ADMIN_PASSWORD", "hunter2-secret"),
    ]);
    let config = load(env).unwrap();
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("s3cr3t-pw") && !debug.contains("hunter2-secret"),
        "{debug}"
    );
    let yaml = config.to_yaml().unwrap();
    assert!(
        !yaml.contains("s3cr3t-pw") && !yaml.contains("hunter2-secret"),
        "{yaml}"
    );

    let err = load(MapSource::from([(
        "EPHYRA_DATABASE_URL",
        "mysql://u:s3cr3t-pw@h/db",
    )]))
    .unwrap_err();
    assert!(!err.to_string().contains("s3cr3t-pw"), "{err}");
}

#[test]
fn admin_password_without_a_user_is_refused() {
    let err = load(MapSource::from([("EPHYRA_ADMIN_PASSWORD", "pw")])).unwrap_err();
    assert!(err.to_string().contains("EPHYRA_ADMIN_USER"), "{err}");
    let err = load(MapSource::from([("EPHYRA_ADMIN_USER", "root")])).unwrap_err();
    assert!(err.to_string().contains("EPHYRA_ADMIN_PASSWORD"), "{err}");
}

#[test]
fn partial_cluster_identity_is_refused() {
    let err = load(MapSource::from([
        ("EPHYRA_CLUSTER_NAME", "home"),
        ("POD_NAMESPACE", "m"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("EPHYRA_POD_NAME"), "{err}");
}

#[test]
fn a_yaml_file_is_read_and_the_environment_wins() {
    let dir = std::env::temp_dir().join(format!("ephyra-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        "serverName: Den\nlisten: 0.0.0.0:8100\nlibraries:\n  - name: Films\n    kind: movies\n    folders: [/media/films]\ncoordination:\n  leaseMillis: 3000\n  renewMillis: 500\n",
    )
    .unwrap();
    let config = ServerConfig::load(
        Some(&path),
        &MapSource::from([("EPHYRA_LISTEN", "127.0.0.1:9000")]),
    )
    .unwrap();
    assert_eq!(config.server_name, "Den");
    assert_eq!(config.listen.port(), 9000);
    assert_eq!(config.libraries[0].name, "Films");
    assert_eq!(config.coordination.lease_millis, 3000);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_yaml_key_is_named_in_the_error() {
    let err = ServerConfig::from_yaml("listen: 0.0.0.0:8096\nlisten_port: 9\n").unwrap_err();
    assert!(err.contains("listen_port"), "{err}");
}

#[test]
fn rendered_yaml_reads_back_to_the_same_configuration() {
    let mut config = load(MapSource::from([
        ("EPHYRA_LIBRARIES", "movies:Films=/media/films"),
        ("EPHYRA_CLUSTER_NAME", "home"),
        ("EPHYRA_NAMESPACE", "media"),
        ("EPHYRA_POD_NAME", "home-0"),
    ]))
    .unwrap();
    let yaml = config.to_yaml().unwrap();
    let back = ServerConfig::from_yaml(&yaml).unwrap();
    // The database URL is a secret and is not rendered; everything else round-trips.
    config.database.url = None;
    assert_eq!(back, config);
}

#[test]
fn library_spec_errors_explain_the_expected_form() {
    assert!(
        parse_libraries("Films=/x")
            .unwrap_err()
            .contains("kind:Name")
    );
    assert!(parse_libraries("movies:Films").unwrap_err().contains("="));
    assert!(
        parse_libraries("movies:Films=")
            .unwrap_err()
            .contains("no folder")
    );
}

#[test]
fn lease_shorter_than_two_renewals_is_refused() {
    let err = load(MapSource::from([
        ("EPHYRA_LEASE_MILLIS", "1000"),
        ("EPHYRA_RENEW_MILLIS", "800"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("EPHYRA_LEASE_MILLIS"), "{err}");
}

#[test]
fn trusted_proxies_are_a_comma_separated_list_of_networks() {
    let config = load(MapSource::new().with(
        "EPHYRA_TRUSTED_PROXIES",
        "10.42.0.0/16, 192.168.1.1,fd00::/8",
    ))
    .unwrap();
    assert_eq!(
        config.trusted_proxies,
        ["10.42.0.0/16", "192.168.1.1", "fd00::/8"]
    );
    assert!(load(MapSource::new()).unwrap().trusted_proxies.is_empty());
    for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.0/x"] {
        let err = load(MapSource::new().with("EPHYRA_TRUSTED_PROXIES", bad)).unwrap_err();
        assert!(
            err.to_string().contains("EPHYRA_TRUSTED_PROXIES"),
            "{bad}: {err}"
        );
    }
}
