// The official Jellyfin web client (a built jellyfin-web, served by Ephyra at /web/) driven in
// Debian's Chromium through playwright-core: the journeys a person makes, each ending in a
// screenshot. Every request the page makes to the server that answers 4xx/5xx, and every
// console error, is reported.
//
// Usage: node webclient.mjs <server url> <user> <password> <output folder> [journey,...]
// Prints one JSON object (journeys with their outcome, HTTP failures, console errors) on
// stdout; exits 1 when a journey failed. Run by e2e/tests/e2e/web_client.rs.
//
// A journey is one entry of JOURNEYS: a name and an async function of the shared context.
// Later journeys (transcoded playback, subtitles) are added there.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [base, userName, password, outDir, only] = process.argv.slice(2);
if (!base || !userName || !outDir) {
    console.error('usage: node webclient.mjs <server url> <user> <password> <output folder> [journey,...]');
    process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });

/** How long one step may wait for the page (a loaded 2-core machine is slow). */
const STEP_TIMEOUT_MS = 60_000;
/** The film the playback journeys play (an H.264/AAC mp4 longer than 5 minutes). */
const FILM = process.env.EPHYRA_WEB_FILM || 'Long Voyage';

const ctx = {
    base: base.replace(/\/$/, ''),
    shots: [],
    page: null,
    auth: null,

    /** Saves a screenshot named `name` into the output folder. */
    async shot(name) {
        const file = path.join(outDir, `${String(this.shots.length + 1).padStart(2, '0')}-${name}.png`);
        await this.page.screenshot({ path: file, fullPage: false });
        this.shots.push(file);
    },

    /** Opens a client route (`#/home`, `#/details?id=...`). */
    async open(route) {
        await this.page.goto(`${this.base}/web/${route}`);
    },

    /** The signed-in user's id and token, as the client stored them. */
    async credentials() {
        const creds = await this.page.evaluate(() => localStorage.getItem('jellyfin_credentials'));
        const server = JSON.parse(creds || '{}').Servers?.[0];
        if (!server?.AccessToken) throw new Error(`no stored credentials: ${creds}`);
        return { userId: server.UserId, token: server.AccessToken, serverId: server.Id };
    },

    /** A JSON API call with the signed-in user's token (for ids, and to check outcomes). */
    async api(pathAndQuery) {
        const { token } = this.auth;
        const res = await fetch(`${this.base}${pathAndQuery}`, {
            headers: { Authorization: `MediaBrowser Client="Ephyra Web Test", Device="chromium", DeviceId="web-test", Version="0.1.0", Token="${token}"` }
        });
        if (!res.ok) throw new Error(`${pathAndQuery}: HTTP ${res.status}`);
        return res.json();
    },

    /** The id of the film named `name`. */
    async filmId(name) {
        const found = await this.api(`/Items?Recursive=true&IncludeItemTypes=Movie&SearchTerm=${encodeURIComponent(name)}`);
        const film = found.Items.find(i => i.Name === name);
        if (!film) throw new Error(`no film named ${name}`);
        return film.Id;
    }
};

/** Waits until `text` is visible somewhere on the page. */
async function seeText(text) {
    await ctx.page.getByText(text, { exact: false }).first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
}

const JOURNEYS = [
    ['sign-in', async () => {
        await ctx.open('');
        const name = ctx.page.locator('#txtManualName');
        // With public users the picker shows first; "Manual Login" opens the form.
        const manual = ctx.page.locator('.btnManual:visible');
        await Promise.race([
            name.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS }),
            manual.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS })
        ]);
        await ctx.shot('login-page');
        if (!(await name.isVisible())) await manual.click();
        await name.fill(userName);
        await ctx.page.locator('#txtManualPassword').fill(password);
        await ctx.page.locator('.manualLoginForm button[type=submit]').click();
        await ctx.page.waitForURL(/#\/home/, { timeout: STEP_TIMEOUT_MS });
        ctx.auth = await ctx.credentials();
        await seeText('My Media');
        await ctx.shot('home');
    }],

    ['library', async () => {
        const views = await ctx.api(`/UserViews?userId=${ctx.auth.userId}`);
        const films = views.Items.find(v => v.CollectionType === 'movies');
        await ctx.open(`#/movies?topParentId=${films.Id}&collectionType=movies`);
        await seeText(FILM);
        await ctx.shot('films-library');
    }],

    ['search', async () => {
        await ctx.open(`#/search?query=${encodeURIComponent(FILM.split(' ')[0])}`);
        await seeText(FILM);
        await ctx.shot('search');
    }],

    ['film-details', async () => {
        ctx.filmIdValue = await ctx.filmId(FILM);
        await ctx.open(`#/details?id=${ctx.filmIdValue}&serverId=${ctx.auth.serverId}`);
        await seeText(FILM);
        await ctx.page.locator('.btnPlay:visible').first().waitFor({ timeout: STEP_TIMEOUT_MS });
        await ctx.shot('film-details');
    }],

    ['play-direct', async () => {
        await ctx.page.locator('.btnPlay:visible').first().click();
        const video = ctx.page.locator('video');
        await video.first().waitFor({ state: 'attached', timeout: STEP_TIMEOUT_MS });
        await ctx.page.waitForFunction(() => {
            const v = document.querySelector('video');
            return v && v.currentTime > 4 && !v.paused;
        }, null, { timeout: STEP_TIMEOUT_MS * 2 });
        const state = await ctx.page.evaluate(() => {
            const v = document.querySelector('video');
            return { src: v.currentSrc, time: v.currentTime, width: v.videoWidth };
        });
        ctx.played = state;
        if (!/\/Videos\/[0-9a-f]+\/stream/i.test(state.src)) {
            throw new Error(`not a direct stream: ${state.src}`);
        }
        await ctx.shot('playing');
        // Leaving the player stops playback; the client reports where it stopped.
        await ctx.page.goBack();
        await ctx.page.waitForFunction(() => !document.querySelector('video'), null, { timeout: STEP_TIMEOUT_MS });
    }],

    ['continue-watching', async () => {
        const deadline = Date.now() + STEP_TIMEOUT_MS;
        for (;;) {
            const resume = await ctx.api(`/UserItems/Resume?userId=${ctx.auth.userId}&MediaTypes=Video`);
            if (resume.Items.some(i => i.Id === ctx.filmIdValue)) break;
            if (Date.now() > deadline) throw new Error('the film never reached Continue Watching');
            await new Promise(r => setTimeout(r, 500));
        }
        await ctx.open('#/home');
        await seeText('Continue Watching');
        await ctx.page.locator('.section-resume, .verticalSection').filter({ hasText: 'Continue Watching' })
            .getByText(FILM).first().waitFor({ timeout: STEP_TIMEOUT_MS });
        await ctx.shot('continue-watching');
    }],

    ['sign-out', async () => {
        await ctx.open('#/mypreferencesmenu');
        await ctx.page.locator('.btnLogout:visible').first().click({ timeout: STEP_TIMEOUT_MS });
        await ctx.page.waitForURL(/#\/login/, { timeout: STEP_TIMEOUT_MS });
        await ctx.shot('signed-out');
    }]
];

async function main() {
    const browser = await chromium.launch({
        executablePath: process.env.EPHYRA_CHROMIUM || '/usr/bin/chromium',
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
            '--autoplay-policy=no-user-gesture-required']
    });
    const report = { journeys: [], httpErrors: [], consoleErrors: [], screenshots: ctx.shots };
    try {
        const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
        ctx.page = await context.newPage();
        ctx.page.setDefaultTimeout(STEP_TIMEOUT_MS);
        ctx.page.on('response', res => {
            if (res.url().startsWith(ctx.base) && res.status() >= 400) {
                report.httpErrors.push({ status: res.status(), method: res.request().method(), url: res.url().slice(ctx.base.length) });
            }
        });
        ctx.page.on('console', msg => {
            if (msg.type() === 'error') report.consoleErrors.push(msg.text().slice(0, 500));
        });
        ctx.page.on('pageerror', err => report.consoleErrors.push(`pageerror: ${String(err).slice(0, 500)}`));
        const wanted = only ? only.split(',') : null;
        for (const [name, run] of JOURNEYS) {
            if (wanted && !wanted.includes(name)) continue;
            const started = Date.now();
            try {
                await run();
                report.journeys.push({ name, ok: true, ms: Date.now() - started });
            } catch (err) {
                report.journeys.push({ name, ok: false, ms: Date.now() - started, error: String(err).slice(0, 1000) });
                try { await ctx.shot(`failed-${name}`); } catch { /* the page may be gone */ }
                // Later journeys depend on earlier ones.
                break;
            }
        }
        report.played = ctx.played;
    } finally {
        await browser.close();
    }
    console.log(JSON.stringify(report));
    process.exit(report.journeys.every(j => j.ok) ? 0 : 1);
}

main().catch(err => {
    console.error(`web client run failed: ${err.stack || err}`);
    process.exit(1);
});
