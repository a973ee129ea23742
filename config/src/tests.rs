use super::*;
use std::path::Path;

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
fn environment_overrides_apply_together() {
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

/// One override of `key` (with the keys it needs beside it) and what it must change.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    fn(&ServerConfig) -> bool,
);

/// The case for each documented key. A key added to [`ENV_KEYS`] without a case here fails.
fn case(key: &str) -> Case {
    match key {
        "EPHYRA_LISTEN" => ("127.0.0.1:18096", &[], |c| c.listen.port() == 18096),
        "EPHYRA_ADMIN_LISTEN" => ("127.0.0.1:19096", &[], |c| c.admin_listen.port() == 19096),
        "EPHYRA_SERVER_NAME" => ("Den", &[], |c| c.server_name == "Den"),
        "EPHYRA_DATA_DIR" => ("/var/lib/e", &[], |c| c.data_dir == Path::new("/var/lib/e")),
        "EPHYRA_DATABASE_URL" => ("postgres://u:p@db/e", &[], |c| {
            c.database.kind() == Some(DatabaseKind::Postgres)
        }),
        "EPHYRA_DATABASE_MAX_CONNECTIONS" => ("3", &[], |c| c.database.max_connections == 3),
        "EPHYRA_REDIS_URL" => (
            "redis://r:6379",
            &[("EPHYRA_DATABASE_URL", "postgres://u:p@db/e")],
            |c| c.redis.url.is_some(),
        ),
        "EPHYRA_TRANSCODE_DIR" => ("/t", &[], |c| c.transcode_dir() == Path::new("/t")),
        "EPHYRA_MAX_TRANSCODES" => ("7", &[], |c| c.transcode.max_concurrent == 7),
        "EPHYRA_IMAGE_CACHE_MAX_MIB" => ("64", &[], |c| c.images.cache_max_mib == 64),
        "EPHYRA_LIBRARIES" => ("movies:F=/f", &[], |c| c.libraries.len() == 1),
        "EPHYRA_SCAN_INTERVAL_SECONDS" => ("60", &[], |c| c.scan.interval_seconds == 60),
        "EPHYRA_SCAN_WATCH" => ("false", &[], |c| !c.scan.watch),
        "EPHYRA_SCAN_FORK_SERVER" => ("false", &[], |c| !c.scan.fork_server),
        "EPHYRA_ADMIN_USER" => ("root", &[("EPHYRA_ADMIN_PASSWORD", "pw")], |c| {
            c.admin.as_ref().is_some_and(|a| a.user == "root")
        }),
        "EPHYRA_ADMIN_PASSWORD" => ("pw", &[("EPHYRA_ADMIN_USER", "root")], |c| {
            c.admin
                .as_ref()
                .and_then(|a| a.password.as_ref())
                .is_some_and(|p| p.expose() == "pw")
        }),
        "EPHYRA_FFMPEG" => ("/x/ffmpeg", &[], |c| {
            c.ffmpeg.ffmpeg == Path::new("/x/ffmpeg")
        }),
        "EPHYRA_FFPROBE" => ("/x/ffprobe", &[], |c| {
            c.ffmpeg.ffprobe == Path::new("/x/ffprobe")
        }),
        "EPHYRA_HWACCEL" => ("qsv", &[], |c| {
            c.hardware_acceleration.kind == HwAccelKind::Qsv
        }),
        "EPHYRA_HWACCEL_DEVICE" => ("/dev/dri/renderD129", &[], |c| {
            c.hardware_acceleration.device.as_deref() == Some(Path::new("/dev/dri/renderD129"))
        }),
        "EPHYRA_CLUSTER_NAME" => (
            "home",
            &[("EPHYRA_NAMESPACE", "m"), ("EPHYRA_POD_NAME", "p")],
            |c| c.cluster.as_ref().is_some_and(|id| id.name == "home"),
        ),
        "EPHYRA_NAMESPACE" => (
            "media",
            &[("EPHYRA_CLUSTER_NAME", "h"), ("EPHYRA_POD_NAME", "p")],
            |c| c.cluster.as_ref().is_some_and(|id| id.namespace == "media"),
        ),
        "EPHYRA_POD_NAME" => (
            "h-server-2",
            &[("EPHYRA_CLUSTER_NAME", "h"), ("EPHYRA_NAMESPACE", "m")],
            |c| {
                c.cluster
                    .as_ref()
                    .is_some_and(|id| id.pod_name == "h-server-2")
            },
        ),
        "EPHYRA_LEASE_MILLIS" => ("9000", &[], |c| c.coordination.lease_millis == 9000),
        "EPHYRA_RENEW_MILLIS" => ("900", &[], |c| c.coordination.renew_millis == 900),
        "EPHYRA_JOB_WORKERS" => ("5", &[], |c| c.jobs.workers == Some(5)),
        "EPHYRA_JOB_VISIBILITY_SECONDS" => ("12", &[], |c| c.jobs.visibility_seconds == Some(12)),
        "EPHYRA_DISCOVERY" => ("false", &[], |c| !c.discovery),
        "EPHYRA_TRUSTED_PROXIES" => ("10.0.0.0/8, fd00::/8", &[], |c| {
            c.trusted_proxies == ["10.0.0.0/8", "fd00::/8"]
        }),
        "EPHYRA_LOG" => ("debug", &[], |c| c.log.level == "debug"),
        "EPHYRA_LOG_FORMAT" => ("json", &[], |c| c.log.format == LogFormat::Json),
        "EPHYRA_WEB_DIR" => ("/srv/web", &[], |c| {
            c.web.dir.as_deref() == Some(Path::new("/srv/web"))
        }),
        other => panic!("{other} is documented in ENV_KEYS but has no case in this test"),
    }
}

#[test]
fn every_documented_key_changes_the_configuration() {
    for key in ENV_KEYS {
        let (value, beside, check) = case(key);
        let mut env = MapSource::new().with(key, value);
        for (other, other_value) in beside {
            env = env.with(other, *other_value);
        }
        let config = load(env).unwrap_or_else(|e| panic!("{key}={value}: {e}"));
        assert!(
            check(&config),
            "{key}={value} did not change the configuration"
        );
        // Without it, the default does not pass the same check.
        let mut without = MapSource::new();
        for (other, other_value) in beside {
            without = without.with(other, *other_value);
        }
        if let Ok(default) = load(without) {
            assert!(!check(&default), "{key}: the check passes without the key");
        }
    }
}

#[test]
fn the_keys_read_the_keys_documented_and_the_readme_agree() {
    // Every `EPHYRA_*` name the parser reads is in ENV_KEYS, and every one is in the README's
    // table: one list drives the parser's test and the documentation's.
    let parser = include_str!("env.rs");
    let read: std::collections::BTreeSet<&str> = parser
        .match_indices("\"EPHYRA_")
        .map(|(at, _)| {
            let name = &parser[at + 1..];
            &name[..name.find('"').unwrap_or(name.len())]
        })
        .collect();
    let documented: std::collections::BTreeSet<&str> = ENV_KEYS.iter().copied().collect();
    assert_eq!(read, documented, "keys env.rs reads vs ENV_KEYS");
    let readme = include_str!("../../README.md");
    for key in ENV_KEYS {
        assert!(
            readme.contains(&format!("`{key}`")),
            "{key} is not in the README's table"
        );
    }
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
