// Plays films as jellyfin-web does in this Chromium, one after the other in one browser: the
// page asks `POST /Items/{id}/PlaybackInfo` with the DeviceProfile the browser would send, plays
// the answer's `TranscodingUrl` with hls.js, and shows each subtitle delivered `External` as a
// <track> (its `DeliveryUrl`, WebVTT). One JSON line per film on stdout:
// {"event":"film", "name", "status", "supportsDirectPlay", "transcodingUrl", "subProtocol",
//  "subtitles": [...],
//  "currentTime", "frames", "videoWidth", "fatal", "errors", "cue", "hlsSubtitleTracks"}, then
// {"event":"done"}. A film with `manifestSubtitles` is asked with subtitles delivered `Hls` and
// segments in `container`: hls.js lists them from the master playlist and the first is picked.
//
// Usage: node play-films.mjs <config.json>, the config being
// {"base", "token", "userId", "profile": <DeviceProfile>, "playFor": s, "timeout": s,
//  "films": [{"name", "id", "subtitleStreamIndex"?, "enableDirectPlay"?, "manifestSubtitles"?,
//              "container"?}]}
//
// Like jellyfin-web's browserDeviceProfile, HEVC stays in the profile only when the browser
// can decode it (`MediaSource.isTypeSupported`); Debian's Chromium without a GPU cannot.
import { chromium } from 'playwright-core';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const here = path.dirname(fileURLToPath(import.meta.url));
const hlsPath = path.join(here, 'node_modules', 'hls.js', 'dist', 'hls.min.js');
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const withoutHevc = (profile) => {
  const strip = (list) => list && list.split(',').filter((c) => c !== 'hevc' && c !== 'h265').join(',');
  const p = JSON.parse(JSON.stringify(profile));
  for (const d of p.DirectPlayProfiles || []) if (d.VideoCodec) d.VideoCodec = strip(d.VideoCodec);
  for (const t of p.TranscodingProfiles || []) if (t.VideoCodec) t.VideoCodec = strip(t.VideoCodec);
  p.CodecProfiles = (p.CodecProfiles || []).filter((c) => c.Codec !== 'hevc');
  return p;
};

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await browser.newPage();
  await page.route(`${config.base}/__player.html`, (route) => route.fulfill({
    contentType: 'text/html',
    body: '<!doctype html><html><body></body></html>',
  }));
  await page.goto(`${config.base}/__player.html`);
  await page.addScriptTag({ path: hlsPath });
  const hevc = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.4.L120.B0"'));
  const profile = hevc ? config.profile : withoutHevc(config.profile);
  say({ event: 'caps', hevc });

  for (const film of config.films) {
    // A client that wants subtitles in the manifest (as Android TV does, with TS segments).
    let filmProfile = profile;
    if (film.manifestSubtitles) {
      filmProfile = JSON.parse(JSON.stringify(profile));
      filmProfile.SubtitleProfiles = [{ Format: 'vtt', Method: 'Hls' }];
      filmProfile.TranscodingProfiles = filmProfile.TranscodingProfiles
        .filter((t) => t.Type !== 'Video' || t.Container === film.container);
    }
    const info = await page.evaluate(async ({ film, profile, config }) => {
      const auth = `MediaBrowser Client="Jellyfin Web", Device="Chromium", DeviceId="e2e-chromium", Version="10.11.0", Token="${config.token}"`;
      const body = {
        UserId: config.userId, StartTimeTicks: 0, IsPlayback: true, AutoOpenLiveStream: true,
        MaxStreamingBitrate: 120000000, MediaSourceId: film.id, DeviceProfile: profile,
      };
      if (film.subtitleStreamIndex !== undefined) body.SubtitleStreamIndex = film.subtitleStreamIndex;
      if (film.enableDirectPlay === false) body.EnableDirectPlay = false;
      const r = await fetch(`/Items/${film.id}/PlaybackInfo?UserId=${config.userId}`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: auth },
        body: JSON.stringify(body),
      });
      return { status: r.status, json: await r.json().catch(() => null) };
    }, { film, profile: filmProfile, config });
    const source = info.json && info.json.MediaSources && info.json.MediaSources[0];
    const result = {
      event: 'film', name: film.name, status: info.status,
      supportsDirectPlay: source ? source.SupportsDirectPlay : null,
      transcodingUrl: source ? source.TranscodingUrl || null : null,
      subProtocol: source ? source.TranscodingSubProtocol || null : null,
      subtitles: source ? source.MediaStreams.filter((s) => s.Type === 'Subtitle').map((s) => ({
        index: s.Index, isExternal: s.IsExternal, language: s.Language,
        deliveryMethod: s.DeliveryMethod, deliveryUrl: s.DeliveryUrl || null,
      })) : [],
    };
    if (!result.transcodingUrl) { say(result); continue; }

    const external = result.subtitles.find((s) => s.deliveryMethod === 'External' && s.deliveryUrl);
    await page.evaluate(({ src, track }) => {
      document.body.innerHTML = '<video id="v" muted playsinline></video>';
      const video = document.getElementById('v');
      window.__errors = [];
      window.__fatal = false;
      if (track) {
        // jellyfin-web loads an External text subtitle from its DeliveryUrl.
        const t = document.createElement('track');
        t.kind = 'subtitles';
        t.srclang = track.language || 'und';
        t.src = track.deliveryUrl;
        t.default = true;
        video.appendChild(t);
        t.track.mode = 'showing';
      }
      if (window.__hls) window.__hls.destroy();
      const hls = new Hls({ maxBufferLength: 10, maxMaxBufferLength: 20 });
      window.__hls = hls;
      hls.on(Hls.Events.ERROR, (_e, data) => {
        window.__errors.push({ type: data.type, details: data.details, fatal: data.fatal });
        if (data.fatal) window.__fatal = true;
      });
      hls.loadSource(src);
      hls.attachMedia(video);
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        // The user picks the first subtitle of the manifest, if there is one.
        if (hls.subtitleTracks.length > 0) hls.subtitleTrack = 0;
        video.play();
      });
    }, { src: result.transcodingUrl, track: external });

    const started = Date.now();
    let s;
    for (;;) {
      s = await page.evaluate(() => {
        const v = document.getElementById('v');
        const withCues = Array.from(v.textTracks).find((t) => t.cues && t.cues.length);
        const cue = withCues ? withCues.cues[0] : null;
        return {
          t: v.currentTime, fatal: window.__fatal, errors: window.__errors,
          frames: v.getVideoPlaybackQuality().totalVideoFrames, videoWidth: v.videoWidth,
          cue: cue ? { start: cue.startTime, end: cue.endTime, text: cue.text } : null,
          tracks: v.textTracks.length,
          hlsSubtitleTracks: window.__hls.subtitleTracks.length,
        };
      });
      const cueDone = !(external || film.manifestSubtitles) || s.cue;
      if (s.fatal || (s.t >= config.playFor && cueDone) || Date.now() - started > config.timeout * 1000) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await page.evaluate(() => { window.__hls.destroy(); window.__hls = null; });
    say({
      ...result, currentTime: s.t, frames: s.frames, videoWidth: s.videoWidth, fatal: s.fatal,
      errors: s.errors, cue: s.cue, textTracks: s.tracks, hlsSubtitleTracks: s.hlsSubtitleTracks,
      seconds: (Date.now() - started) / 1000,
    });
  }
  say({ event: 'done' });
} finally {
  await browser.close();
}
