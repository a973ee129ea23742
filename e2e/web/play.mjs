// Plays an HLS master playlist with hls.js in headless Chromium and reports, one JSON line at a
// time on stdout, what the player does: {"event":"progress","currentTime":…}, then
// {"event":"ready"} once `readyAfter` seconds have played (the test kills a replica then), and
// finally {"event":"done", "stall": longest wall-clock seconds without progress after ready,
// "errors": [hls.js error events], "fatal": bool, "currentTime": …}.
//
// Usage: node play.mjs <base url> <master path+query> <readyAfter s> <playUntil s> <timeout s>
// The page is served at <base>/__player.html by Playwright itself, so its requests to the
// server are same-origin and carry the load balancer's sticky cookie, as in a browser.
import { chromium } from 'playwright-core';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const [base, master, readyAfterArg, playUntilArg, timeoutArg] = process.argv.slice(2);
const readyAfter = Number(readyAfterArg);
const playUntil = Number(playUntilArg);
const timeout = Number(timeoutArg) * 1000;
const here = path.dirname(fileURLToPath(import.meta.url));
const hlsPath = path.join(here, 'node_modules', 'hls.js', 'dist', 'hls.min.js');
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await browser.newPage();
  await page.route(`${base}/__player.html`, (route) => route.fulfill({
    contentType: 'text/html',
    body: '<!doctype html><html><body><video id="v" muted playsinline></video></body></html>',
  }));
  await page.goto(`${base}/__player.html`);
  await page.addScriptTag({ path: hlsPath });
  await page.evaluate((src) => {
    window.__errors = [];
    window.__fatal = false;
    const video = document.getElementById('v');
    // A short buffer (jellyfin-web keeps 30 s) so the player needs segments made after the kill.
    const hls = new Hls({ maxBufferLength: 10, maxMaxBufferLength: 20 });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      window.__errors.push({ type: data.type, details: data.details, fatal: data.fatal });
      if (data.fatal) window.__fatal = true;
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
  }, master);

  const started = Date.now();
  let ready = false;
  let lastTime = -1;
  let lastProgress = Date.now();
  let stall = 0;
  for (;;) {
    const s = await page.evaluate(() => {
      const v = document.getElementById('v');
      return { t: v.currentTime, fatal: window.__fatal, errors: window.__errors.length };
    });
    const now = Date.now();
    if (s.t > lastTime + 0.01) {
      if (ready) stall = Math.max(stall, (now - lastProgress) / 1000);
      lastTime = s.t;
      lastProgress = now;
      say({ event: 'progress', currentTime: s.t });
    } else if (ready) {
      stall = Math.max(stall, (now - lastProgress) / 1000);
    }
    if (!ready && s.t >= readyAfter) {
      ready = true;
      lastProgress = now;
      say({ event: 'ready', currentTime: s.t });
    }
    if (s.fatal || s.t >= playUntil || now - started > timeout) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const errors = await page.evaluate(() => window.__errors);
  const fatal = await page.evaluate(() => window.__fatal);
  say({ event: 'done', currentTime: lastTime, stall, errors, fatal });
} finally {
  await browser.close();
}
