//! Polling for a condition, with a deadline (tests wait for what they need to see, never for a
//! fixed time), and temporary folders that a later test process cleans up.

pub use ephyra_testsupport::wait::eventually;

/// Milliseconds since the Unix epoch, the unit the server's tables use.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A new temporary folder `ephyra-e2e-<kind>-<pid>-XXXXXX`, after removing those of the same
/// kind whose process is gone (a folder held in a static, or by a killed test process, is never
/// removed by its own process).
pub fn scratch_dir(kind: &str) -> std::io::Result<tempfile::TempDir> {
    let base = std::env::temp_dir();
    let prefix = format!("ephyra-e2e-{kind}-");
    if std::path::Path::new("/proc/self").exists()
        && let Ok(entries) = std::fs::read_dir(&base)
    {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|name| name.strip_prefix(&prefix))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if let Some(pid) = pid
                && pid != std::process::id()
                && !std::path::Path::new("/proc").join(pid.to_string()).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir_in(base)
}
