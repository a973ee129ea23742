// The official Jellyfin TypeScript SDK (@jellyfin/sdk 1.0.0, axios) over the calls the web
// client's journeys make: sign in, the settings read after sign-in, home, a library page,
// an item page, the player's checks, the dashboard and user management.
//
// Usage: node sdk_check.mjs <server url> <admin user> <admin password>
// Prints one JSON object of what it saw on stdout; exits non-zero with the failed check on
// stderr. Run by e2e/tests/e2e/web_client.rs against a real server.

import assert from 'node:assert/strict';
import { Jellyfin } from '@jellyfin/sdk';
import {
    getAuthenticationApi, getBrandingApi, getDeviceApi, getDisplayPreferenceApi, getFilterApi,
    getGenreApi, getLibraryApi, getLibraryStructureApi, getLocalizationApi, getMediaInfoApi,
    getPersonApi, getPluginApi, getScheduledTaskApi, getShowApi, getSystemApi, getUserApi,
    getUserViewApi
} from '@jellyfin/sdk/lib/utils/api/index.js';

const [url, adminName, adminPassword] = process.argv.slice(2);
if (!url || !adminName) {
    console.error('usage: node sdk_check.mjs <server url> <admin user> <admin password>');
    process.exit(2);
}

const jellyfin = new Jellyfin({
    clientInfo: { name: 'Ephyra SDK Check', version: '0.1.0' },
    deviceInfo: { name: 'sdk-check', id: 'sdk-check-device' }
});
const seen = {};

async function main() {
    // Discovery rates the server as a good Jellyfin server.
    const candidates = await jellyfin.discovery.getRecommendedServerCandidates(url);
    const best = jellyfin.discovery.findBestServer(candidates);
    assert.ok(best, `no usable server among ${JSON.stringify(candidates)}`);
    const api = jellyfin.createApi(best.address);

    // Sign in, then what the web client reads right after.
    const auth = await getAuthenticationApi(api).authenticateUserByName({
        authenticateUserByName: { Username: adminName, Pw: adminPassword }
    });
    api.update({ accessToken: auth.data.AccessToken });
    const userId = auth.data.User.Id;
    seen.signedInAs = auth.data.User.Name;

    const prefsApi = getDisplayPreferenceApi(api);
    const prefs = (await prefsApi.getDisplayPreferences({ displayPreferencesId: 'usersettings', userId, client: 'emby' })).data;
    assert.equal(prefs.SortBy, 'SortName');
    assert.equal(typeof prefs.CustomPrefs, 'object');
    await prefsApi.updateDisplayPreferences({
        displayPreferencesId: 'usersettings', userId, client: 'emby',
        displayPreferencesDto: { ...prefs, CustomPrefs: { ...prefs.CustomPrefs, homesection0: 'resume' } }
    });
    const saved = (await prefsApi.getDisplayPreferences({ displayPreferencesId: 'usersettings', userId, client: 'emby' })).data;
    seen.savedHomeSection = saved.CustomPrefs.homesection0;

    // Home.
    const views = (await getUserViewApi(api).getUserViews({ userId })).data;
    seen.views = views.Items.map(v => [v.Name, v.CollectionType]);
    const films = views.Items.find(v => v.CollectionType === 'movies');
    assert.ok(films, 'a films library');
    const library = getLibraryApi(api);
    const latest = (await library.getLatestMedia({ userId, parentId: films.Id, limit: 16, fields: ['PrimaryImageAspectRatio'] })).data;
    seen.latestCount = latest.length;
    const resume = (await library.getResumeItems({ userId, limit: 12, mediaTypes: ['Video'] })).data;
    seen.resumeCount = resume.TotalRecordCount;
    const nextUp = (await getShowApi(api).getNextUp({ userId, limit: 24 })).data;
    assert.ok(Array.isArray(nextUp.Items));

    // A library page: sort, a letter, a year, paging; the filter choices; genres.
    const page = (await library.getItems({
        userId, parentId: films.Id, includeItemTypes: ['Movie'], recursive: true,
        sortBy: ['SortName', 'ProductionYear'], sortOrder: ['Ascending'], startIndex: 0, limit: 100
    })).data;
    seen.films = page.Items.map(i => i.Name);
    const letter = (await library.getItems({ userId, parentId: films.Id, includeItemTypes: ['Movie'], recursive: true, nameStartsWith: 'T' })).data;
    seen.filmsStartingWithT = letter.Items.map(i => i.Name);
    const secondPage = (await library.getItems({ userId, parentId: films.Id, includeItemTypes: ['Movie'], recursive: true, sortBy: ['SortName'], startIndex: 1, limit: 1 })).data;
    assert.equal(secondPage.StartIndex, 1);
    assert.equal(secondPage.Items.length, 1);
    const filters = (await getFilterApi(api).getQueryFiltersLegacy({ userId, parentId: films.Id, includeItemTypes: ['Movie'] })).data;
    seen.years = filters.Years;
    const genres = (await getGenreApi(api).getGenres({ userId, parentId: films.Id })).data;
    assert.deepEqual(genres.Items, []);
    const people = (await getPersonApi(api).getPersons({ userId, searchTerm: 'tiny' })).data;
    assert.deepEqual(people.Items, []);

    // An item page.
    const film = page.Items[0];
    const item = (await library.getItem({ itemId: film.Id, userId })).data;
    assert.equal(item.Id, film.Id);
    const similar = (await library.getSimilarItems({ itemId: film.Id, userId, limit: 12 })).data;
    seen.similar = similar.Items.map(i => i.Name);
    const theme = (await library.getThemeMedia({ itemId: film.Id, userId, inheritFromParent: true })).data;
    assert.deepEqual(theme.ThemeSongsResult.Items, []);
    const intros = (await library.getIntros({ itemId: film.Id, userId })).data;
    assert.deepEqual(intros.Items, []);
    assert.deepEqual((await library.getSpecialFeatures({ itemId: film.Id, userId })).data, []);
    assert.deepEqual((await library.getLocalTrailers({ itemId: film.Id, userId })).data, []);

    // The player's checks and branding.
    const endpoint = (await getSystemApi(api).getEndpointInfo()).data;
    seen.isInNetwork = endpoint.IsInNetwork;
    const bytes = await getMediaInfoApi(api).getBitrateTestBytes({ size: 200000 }, { responseType: 'arraybuffer' });
    seen.bitrateTestBytes = bytes.data.byteLength;
    const branding = (await getBrandingApi(api).getBrandingOptions()).data;
    assert.equal(branding.SplashscreenEnabled, false);

    // The dashboard.
    const system = getSystemApi(api);
    const config = (await system.getConfiguration()).data;
    assert.equal(typeof config.ServerName, 'string');
    const tasks = (await getScheduledTaskApi(api).getTasks({ isHidden: false })).data;
    const scan = tasks.find(t => t.Key === 'RefreshLibrary');
    assert.ok(scan, 'the library scan task');
    await getScheduledTaskApi(api).startTask({ taskId: scan.Id });
    seen.scanTaskStarted = true;
    const folders = (await getLibraryStructureApi(api).getVirtualFolders()).data;
    seen.virtualFolders = folders.map(f => [f.Name, f.CollectionType]);
    seen.cultures = (await getLocalizationApi(api).getCultures()).data.length;
    seen.countries = (await getLocalizationApi(api).getCountries()).data.length;
    assert.deepEqual((await getPluginApi(api).getPlugins()).data, []);
    assert.deepEqual((await getPluginApi(api).getPackages()).data, []);
    assert.deepEqual((await getAuthenticationApi(api).getKeys()).data.Items, []);
    seen.devices = (await getDeviceApi(api).getDevices()).data.TotalRecordCount;
    assert.equal((await system.getLogEntries({ startIndex: 0, limit: 7 })).data.TotalRecordCount, 0);

    // Users: create, sign in, change password, disable, delete.
    const users = getUserApi(api);
    const created = (await users.createUserByName({ createUserByName: { Name: 'sdk-guest', Password: 'guest-pass' } })).data;
    const guestApi = jellyfin.createApi(best.address);
    const guestAuth = await getAuthenticationApi(guestApi).authenticateUserByName({
        authenticateUserByName: { Username: 'sdk-guest', Pw: 'guest-pass' }
    });
    guestApi.update({ accessToken: guestAuth.data.AccessToken });
    await getUserApi(guestApi).updateUserPassword({ userId: created.Id, updateUserPassword: { CurrentPw: 'guest-pass', NewPw: 'other-pass' } });
    const config2 = (await getUserApi(guestApi).getCurrentUser()).data.Configuration;
    await getUserApi(guestApi).updateUserConfiguration({ userId: created.Id, userConfiguration: { ...config2, SubtitleLanguagePreference: 'fra' } });
    seen.guestSubtitleLanguage = (await getUserApi(guestApi).getCurrentUser()).data.Configuration.SubtitleLanguagePreference;
    const policy = (await users.getUserById({ userId: created.Id })).data.Policy;
    await users.updateUserPolicy({ userId: created.Id, userPolicy: { ...policy, IsDisabled: true } });
    seen.disabledGuestStatus = await getUserApi(guestApi).getCurrentUser().then(r => r.status, e => e.response?.status);
    await users.deleteUser({ userId: created.Id });
    seen.deletedGuestStatus = await users.getUserById({ userId: created.Id }).then(r => r.status, e => e.response?.status);

    console.log(JSON.stringify(seen));
}

main().catch(err => {
    const response = err.response ? ` (HTTP ${err.response.status} ${err.config?.method?.toUpperCase()} ${err.config?.url}: ${JSON.stringify(err.response.data)})` : '';
    console.error(`sdk check failed: ${err.stack || err}${response}`);
    console.error(`seen so far: ${JSON.stringify(seen)}`);
    process.exit(1);
});
