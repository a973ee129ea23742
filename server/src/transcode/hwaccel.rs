//! The start-up probe of the configured hardware path: a one-frame encode on the device. A
//! path that fails falls back to software with a warning, so a replica scheduled on a node
//! without its GPU still plays everything (slower).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ephyra_config::{HardwareAcceleration, HwAccelKind};

use super::command::HwPath;

/// How long the probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// The probe's ffmpeg arguments for `hw`: one 256x256 frame through upload and the encoder.
pub fn probe_args(hw: &HwPath) -> Vec<String> {
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
        .map(str::to_owned)
        .to_vec();
    args.extend(hw.init_args());
    args.extend(["-f", "lavfi", "-i", "color=c=black:s=256x256:r=25:d=0.04"].map(str::to_owned));
    let (filter, encoder) = match hw.kind {
        HwAccelKind::None => ("format=yuv420p", "libx264"),
        HwAccelKind::Vaapi => ("format=nv12,hwupload", "h264_vaapi"),
        HwAccelKind::Qsv => ("format=nv12,hwupload=extra_hw_frames=16", "h264_qsv"),
        HwAccelKind::Nvenc => ("format=yuv420p,hwupload_cuda", "h264_nvenc"),
    };
    args.extend(
        [
            "-vf",
            filter,
            "-frames:v",
            "1",
            "-c:v",
            encoder,
            "-f",
            "null",
            "-",
        ]
        .map(str::to_owned),
    );
    args
}

/// Why the configured path is not usable here, or `None` when it is.
pub fn unusable_reason(config: &HardwareAcceleration) -> Option<String> {
    match config.kind {
        HwAccelKind::None => None,
        HwAccelKind::Vaapi | HwAccelKind::Qsv => {
            let node = config
                .device
                .clone()
                .unwrap_or_else(|| "/dev/dri/renderD128".into());
            (!node.exists()).then(|| format!("render node {} does not exist", node.display()))
        }
        HwAccelKind::Nvenc => (!Path::new("/dev/nvidiactl").exists())
            .then(|| "no NVIDIA device (/dev/nvidiactl) in this container".to_owned()),
    }
}

/// The path to use: the configured one when a one-frame encode on it works, else software.
pub async fn choose(ffmpeg: &Path, config: &HardwareAcceleration) -> HwPath {
    let wanted = HwPath {
        kind: config.kind,
        device: config
            .device
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned()),
    };
    if wanted.kind == HwAccelKind::None {
        return wanted;
    }
    if let Some(reason) = unusable_reason(config) {
        tracing::warn!(path = wanted.name(), %reason, "hardware acceleration unavailable; transcoding in software");
        return HwPath::software();
    }
    let run = tokio::process::Command::new(ffmpeg)
        .args(probe_args(&wanted))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(PROBE_TIMEOUT, run).await {
        Ok(Ok(out)) if out.status.success() => {
            tracing::info!(
                path = wanted.name(),
                "hardware acceleration probed: one-frame encode works"
            );
            wanted
        }
        Ok(Ok(out)) => {
            let text = String::from_utf8_lossy(&out.stderr);
            let reason = text
                .lines()
                .last()
                .unwrap_or("no message")
                .trim()
                .to_owned();
            tracing::warn!(path = wanted.name(), %reason, "hardware encode probe failed; transcoding in software");
            HwPath::software()
        }
        Ok(Err(e)) => {
            tracing::warn!(path = wanted.name(), error = %e, "cannot run ffmpeg to probe; transcoding in software");
            HwPath::software()
        }
        Err(_) => {
            tracing::warn!(
                path = wanted.name(),
                "hardware encode probe timed out; transcoding in software"
            );
            HwPath::software()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_probe_uploads_one_frame_to_its_encoder() {
        let vaapi = probe_args(&HwPath {
            kind: HwAccelKind::Vaapi,
            device: Some("/dev/dri/renderD128".to_owned()),
        })
        .join(" ");
        assert!(
            vaapi.contains("-init_hw_device vaapi=va:/dev/dri/renderD128 -filter_hw_device va")
        );
        assert!(vaapi.contains("-vf format=nv12,hwupload -frames:v 1 -c:v h264_vaapi -f null -"));
        let qsv = probe_args(&HwPath {
            kind: HwAccelKind::Qsv,
            device: None,
        })
        .join(" ");
        assert!(qsv.contains("qsv=qs@va") && qsv.contains("-c:v h264_qsv"));
        let nvenc = probe_args(&HwPath {
            kind: HwAccelKind::Nvenc,
            device: None,
        })
        .join(" ");
        assert!(
            nvenc.contains("cuda=cu:0")
                && nvenc.contains("hwupload_cuda")
                && nvenc.contains("h264_nvenc")
        );
    }

    #[tokio::test]
    async fn a_missing_device_falls_back_to_software_and_software_probes_for_real() {
        let config = HardwareAcceleration {
            kind: HwAccelKind::Vaapi,
            device: Some("/dev/dri/no-such-node".into()),
        };
        assert!(unusable_reason(&config).is_some());
        assert_eq!(
            choose(Path::new("ffmpeg"), &config).await,
            HwPath::software()
        );
        // The software probe's command runs here for real.
        let out = tokio::process::Command::new("ffmpeg")
            .args(probe_args(&HwPath::software()))
            .output()
            .await
            .expect("ffmpeg runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[tokio::test]
    async fn hardware_paths_run_only_where_a_device_exists() {
        for kind in [HwAccelKind::Vaapi, HwAccelKind::Qsv, HwAccelKind::Nvenc] {
            let config = HardwareAcceleration { kind, device: None };
            if let Some(reason) = unusable_reason(&config) {
                println!("skipped {kind:?} hardware run: {reason}");
                continue;
            }
            let chosen = choose(Path::new("ffmpeg"), &config).await;
            println!("{kind:?} probe chose {}", chosen.name());
        }
    }
}
