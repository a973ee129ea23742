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
// On a fresh server (no user yet) the first-run wizard creates <user> with <password>;
// otherwise the wizard journey only checks that the server says it is complete.
// EPHYRA_WEB_EPISODE_SERIES names a series whose first episode the browser cannot play as it
// is (HEVC + AC-3), with a text subtitle beside it. EPHYRA_WEB_REPLICAS is a JSON map of
// replica name -> pid: the replica the load balancer's cookie (EPHYRA) sticks the browser to
// is killed while that episode plays.

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
/** The series whose episode must be transcoded and subtitled. */
const SERIES = process.env.EPHYRA_WEB_EPISODE_SERIES || '';
/** Replica name -> pid, for the kill journey. */
const REPLICAS = JSON.parse(process.env.EPHYRA_WEB_REPLICAS || '{}');
/** How far (seconds of media) the episode must play on after its replica was killed. */
const PLAY_ON_SECONDS = 12;

const ctx = {
    base: base.replace(/\/$/, ''),
    shots: [],
    page: null,
    auth: null,

    /** Saves a screenshot of `page` (the main one by default) named `name` into the output folder. */
    async shot(name, page = this.page) {
        const file = path.join(outDir, `${String(this.shots.length + 1).padStart(2, '0')}-${name}.png`);
        await page.screenshot({ path: file, fullPage: false });
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
    },

    /** The id of the first episode of the series named `name`. */
    async firstEpisodeId(name) {
        const found = await this.api(`/Items?Recursive=true&IncludeItemTypes=Series&SearchTerm=${encodeURIComponent(name)}`);
        const series = found.Items.find(i => i.Name === name);
        if (!series) throw new Error(`no series named ${name}`);
        const episodes = await this.api(`/Shows/${series.Id}/Episodes?userId=${this.auth.userId}`);
        if (!episodes.Items.length) throw new Error(`${name} has no episodes`);
        return episodes.Items[0].Id;
    },

    /** The state of the page's <video>, or null. */
    async video() {
        return this.page.evaluate(() => {
            const v = document.querySelector('video');
            return v ? { src: v.currentSrc, time: v.currentTime, paused: v.paused, width: v.videoWidth, error: v.error?.code ?? null } : null;
        });
    },

    /** Waits until the page's <video> has played to at least `seconds`. */
    async playsTo(seconds, timeout = STEP_TIMEOUT_MS * 2) {
        await this.page.waitForFunction(s => {
            const v = document.querySelector('video');
            return v && v.currentTime >= s && !v.paused;
        }, seconds, { timeout });
    },

    /** Leaves the player; the client reports where playback stopped. (A back press while the
     * player is still starting can be swallowed: press again, as a person would.) */
    async stopPlayer() {
        for (let presses = 1; ; presses++) {
            await this.page.goBack();
            try {
                await this.page.waitForFunction(() => !document.querySelector('video'), null, { timeout: STEP_TIMEOUT_MS / 4 });
                return;
            } catch (err) {
                if (presses >= 3) throw err;
            }
        }
    }
};

/** Waits until `text` is visible somewhere on the page (the client keeps earlier pages in
 * the document, hidden, so a match must be visible to count). */
async function seeText(text) {
    await ctx.page.getByText(text, { exact: false }).locator('visible=true').first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
}

/** Clicks the visible submit button of the wizard page at `#/wizard/<step>`. */
async function wizardNext(step) {
    await ctx.page.waitForURL(new RegExp(`#/wizard/${step}`), { timeout: STEP_TIMEOUT_MS });
    const next = ctx.page.locator('.button-submit:visible').first();
    await next.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    // Each page fills its form from the server before it may go on.
    const filled = {
        start: '#selectLocalizationLanguage option',
        settings: '#selectLanguage option'
    }[step];
    if (filled) await ctx.page.locator(filled).first().waitFor({ state: 'attached', timeout: STEP_TIMEOUT_MS });
    await ctx.shot(`wizard-${step}`);
    await next.click();
}

const JOURNEYS = [
    ['wizard', async () => {
        const info = await (await fetch(`${ctx.base}/System/Info/Public`)).json();
        if (info.StartupWizardCompleted) {
            ctx.wizard = 'already complete';
            return;
        }
        await ctx.open('');
        // The user page fills its form from GET /Startup/User as it shows: type after that.
        const userLoaded = ctx.page.waitForResponse(r => /\/Startup\/User/i.test(r.url()) && r.request().method() === 'GET', { timeout: STEP_TIMEOUT_MS * 2 });
        await wizardNext('start');
        await ctx.page.waitForURL(/#\/wizard\/user/, { timeout: STEP_TIMEOUT_MS });
        await userLoaded;
        // The page's own fill runs just after the response: type until the values stay.
        for (let tries = 0; ; tries++) {
            await ctx.page.locator('#txtUsername').fill(userName);
            await ctx.page.locator('#txtManualPassword').fill(password);
            await ctx.page.locator('#txtPasswordConfirm').fill(password);
            const kept = await ctx.page.evaluate(([u, p]) => document.querySelector('#txtUsername').value === u
                && document.querySelector('#txtManualPassword').value === p, [userName, password]);
            if (kept) break;
            if (tries > 20) throw new Error('the user form keeps being reset');
            await new Promise(r => setTimeout(r, 100));
        }
        await wizardNext('user');
        // The libraries the operator configured are listed; the person adds none.
        await ctx.page.waitForURL(/#\/wizard\/library/, { timeout: STEP_TIMEOUT_MS });
        await seeText('Films');
        await wizardNext('library');
        await wizardNext('settings');
        await wizardNext('remoteaccess');
        await ctx.page.waitForURL(/#\/wizard\/finish/, { timeout: STEP_TIMEOUT_MS });
        await ctx.shot('wizard-finish');
        await ctx.page.locator('.btnWizardNext:visible').first().click();
        await ctx.page.locator('#txtManualName, .btnManual').first().waitFor({ state: 'attached', timeout: STEP_TIMEOUT_MS });
        const after = await (await fetch(`${ctx.base}/System/Info/Public`)).json();
        if (!after.StartupWizardCompleted) throw new Error('the server still says the wizard is not complete');
        ctx.wizard = 'completed';
    }],

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
        await ctx.page.locator('video').first().waitFor({ state: 'attached', timeout: STEP_TIMEOUT_MS });
        await ctx.playsTo(3);
        const state = await ctx.video();
        if (!/\/Videos\/[0-9a-f]+\/stream/i.test(state.src)) {
            throw new Error(`not a direct stream: ${state.src}`);
        }
        // A person drags the slider a third of the way in (past Jellyfin's 5 % for a resume
        // point); a ranged request serves the new position.
        await ctx.page.evaluate(() => { document.querySelector('video').currentTime = 130; });
        await ctx.playsTo(133);
        ctx.played = { film: await ctx.video() };
        await ctx.shot('playing-direct');
        await ctx.stopPlayer();
    }],

    ['episode-transcoded', async () => {
        if (!SERIES) throw new Error('EPHYRA_WEB_EPISODE_SERIES is not set');
        ctx.episodeId = await ctx.firstEpisodeId(SERIES);
        await ctx.open(`#/details?id=${ctx.episodeId}&serverId=${ctx.auth.serverId}`);
        await seeText(SERIES);
        // The subtitle beside the file is offered before playback, and the person picks it.
        const select = ctx.page.locator('.selectSubtitles:visible');
        await select.waitFor({ timeout: STEP_TIMEOUT_MS });
        const options = await select.locator('option').allTextContents();
        const english = options.findIndex(o => /english|eng/i.test(o));
        if (english < 0) throw new Error(`no English subtitle offered: ${JSON.stringify(options)}`);
        const value = await select.locator('option').nth(english).getAttribute('value');
        await select.selectOption(value);
        await ctx.shot('episode-details-subtitle-chosen');
        const masters = [];
        const onRequest = req => { if (/master\.m3u8/i.test(req.url())) masters.push(req.url()); };
        ctx.page.on('request', onRequest);
        await ctx.page.locator('.btnPlay:visible').first().click();
        await ctx.page.locator('video').first().waitFor({ state: 'attached', timeout: STEP_TIMEOUT_MS });
        await ctx.playsTo(4, STEP_TIMEOUT_MS * 3);
        ctx.page.off('request', onRequest);
        const state = await ctx.video();
        if (!masters.length) throw new Error(`the episode was not transcoded over HLS: ${state.src}`);
        if (!/^blob:/.test(state.src)) throw new Error(`not played through Media Source Extensions: ${state.src}`);
        ctx.played.episode = { ...state, master: masters[0].slice(ctx.base.length) };
        await ctx.shot('playing-transcoded');
    }],

    ['subtitles', async () => {
        // The chosen subtitle is shown: by the player's own renderer or a native text track.
        const shown = await ctx.page.waitForFunction(() => {
            const custom = document.querySelector('.videoSubtitlesInner');
            if (custom && /Harbour line \d+/.test(custom.textContent)) return custom.textContent;
            const v = document.querySelector('video');
            for (const track of v?.textTracks ?? []) {
                if (track.mode === 'showing' && track.activeCues?.length) return track.activeCues[0].text;
            }
            return false;
        }, null, { timeout: STEP_TIMEOUT_MS });
        ctx.subtitleShown = await shown.jsonValue();
        await ctx.shot('subtitle-shown');
    }],

    ['replica-killed', async () => {
        const cookie = (await ctx.page.context().cookies()).find(c => c.name === 'EPHYRA');
        if (!cookie) throw new Error('the load balancer set no EPHYRA cookie');
        const pid = REPLICAS[cookie.value];
        if (!pid) throw new Error(`no pid for replica ${cookie.value} in ${JSON.stringify(REPLICAS)}`);
        const before = await ctx.video();
        process.kill(pid, 'SIGKILL');
        ctx.killedReplica = cookie.value;
        const killedAt = Date.now();
        // Playback goes on from the other replica: the same session, the same transcode.
        await ctx.playsTo(before.time + PLAY_ON_SECONDS, STEP_TIMEOUT_MS * 3);
        const after = await ctx.video();
        if (after.error) throw new Error(`the video failed after the kill: ${after.error}`);
        ctx.afterKill = { from: before.time, to: after.time, wallSeconds: (Date.now() - killedAt) / 1000 };
        await ctx.shot('playing-after-replica-killed');
        await ctx.stopPlayer();
    }],

    ['continue-watching', async () => {
        const deadline = Date.now() + STEP_TIMEOUT_MS;
        for (;;) {
            const resume = await ctx.api(`/UserItems/Resume?userId=${ctx.auth.userId}&MediaTypes=Video`);
            const ids = resume.Items.map(i => i.Id);
            if (ids.includes(ctx.filmIdValue) && ids.includes(ctx.episodeId)) break;
            if (Date.now() > deadline) {
                const episode = await ctx.api(`/Items/${ctx.episodeId}?userId=${ctx.auth.userId}`);
                throw new Error(`the film and the episode never both reached Continue Watching: ${JSON.stringify(resume.Items.map(i => i.Name))}; the episode: ${JSON.stringify({ type: episode.Type, mediaType: episode.MediaType, userData: episode.UserData })}`);
            }
            await new Promise(r => setTimeout(r, 500));
        }
        await ctx.open('#/home');
        await seeText('Continue Watching');
        await ctx.page.locator('.section-resume, .verticalSection').filter({ hasText: 'Continue Watching' })
            .getByText(FILM).locator('visible=true').first().waitFor({ timeout: STEP_TIMEOUT_MS });
        await ctx.shot('continue-watching');
    }],

    ['resume', async () => {
        // The film's page offers to resume where it stopped, and the player starts there.
        await ctx.open(`#/details?id=${ctx.filmIdValue}&serverId=${ctx.auth.serverId}`);
        await seeText(FILM);
        await ctx.page.locator('.btnPlay:visible').first().click();
        await ctx.page.locator('video').first().waitFor({ state: 'attached', timeout: STEP_TIMEOUT_MS });
        await ctx.page.waitForFunction(() => {
            const v = document.querySelector('video');
            return v && !v.paused && v.currentTime > 120;
        }, null, { timeout: STEP_TIMEOUT_MS * 2 });
        ctx.resumedAt = (await ctx.video()).time;
        await ctx.playsTo(ctx.resumedAt + 2);
        await ctx.shot('resumed');
        await ctx.stopPlayer();
    }],

    ['quick-connect', async () => {
        // A second device (a TV, say) asks for a code; the signed-in person approves it.
        const tvContext = await ctx.browser.newContext({ viewport: { width: 1280, height: 800 } });
        try {
            const tv = await tvContext.newPage();
            tv.setDefaultTimeout(STEP_TIMEOUT_MS);
            await tv.goto(`${ctx.base}/web/#/login`);
            const quick = tv.locator('.btnQuick:visible');
            await quick.waitFor({ timeout: STEP_TIMEOUT_MS });
            await quick.click();
            const dialog = tv.locator('#quickConnectAlert');
            await dialog.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
            const code = ((await dialog.textContent()).match(/\d{6}/) || [])[0];
            if (!code) throw new Error(`no code in the dialog: ${await dialog.textContent()}`);
            await ctx.shot('quick-connect-code', tv);
            await ctx.open('#/quickconnect');
            await ctx.page.locator('#txtQuickConnectCode').fill(code);
            await ctx.page.locator('.button-submit:visible').first().click();
            await tv.waitForURL(/#\/home/, { timeout: STEP_TIMEOUT_MS * 2 });
            await tv.getByText('My Media').locator('visible=true').first().waitFor({ timeout: STEP_TIMEOUT_MS });
            await ctx.shot('quick-connect-signed-in', tv);
        } finally {
            await tvContext.close();
        }
    }],

    ['dashboard', async () => {
        await ctx.open('#/dashboard/users');
        await seeText(userName);
        await ctx.shot('dashboard-users');
        await ctx.open('#/dashboard/libraries');
        await seeText('Films');
        await ctx.shot('dashboard-libraries');
    }],

    ['sign-out', async () => {
        await ctx.open('#/mypreferencesmenu');
        // The settings page's button (the drawer has one too, off screen).
        await ctx.page.locator('.btnLogout.listItem-border:visible').first().click({ timeout: STEP_TIMEOUT_MS });
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
        ctx.browser = browser;
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
        report.wizard = ctx.wizard;
        report.subtitleShown = ctx.subtitleShown;
        report.killedReplica = ctx.killedReplica;
        report.afterKill = ctx.afterKill;
        report.resumedAt = ctx.resumedAt;
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
