"""Drive a running Ephyra server with the real Jellyfin Python client (jellyfin-apiclient-python).

Usage: python_client.py URL USER PASSWORD
Prints one JSON object with what the client saw; the Rust test compares it with the library on
disk. Any step that fails raises, so the process exits non-zero with a traceback.
"""

import json
import sys
import time

import requests
from jellyfin_apiclient_python import JellyfinClient


def new_client(device_id):
    client = JellyfinClient()
    client.config.app("ephyra-e2e", "0.0.1", "e2e-device", device_id)
    client.config.data["auth.ssl"] = False
    return client


def main():
    url, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
    out = {}

    client = new_client("python-e2e-1")
    state = client.auth.connect_to_address(url)
    assert state["State"] != 0, f"connect_to_address failed: {state}"
    result = client.auth.login(url, user, password)
    assert result.get("AccessToken"), f"login failed: {result}"
    client.logged_in = True
    out["server_id"] = result["ServerId"]
    out["user_name"] = result["User"]["Name"]

    api = client.jellyfin
    views = api.get_views()["Items"]
    out["views"] = sorted(v["Name"] for v in views)
    films_view = next(v for v in views if v.get("CollectionType") == "movies")

    items = api.get_user_items(parent_id=films_view["Id"], include_item_types="Movie,Episode",
                               recursive=True, fields="MediaSources", limit=50)["Items"]
    out["films"] = sorted(f'{i["Name"]} ({i.get("ProductionYear")})' for i in items)
    film = next(i for i in items if i["Name"] == "Big Buck Test")

    detail = api.get_item(film["Id"])
    out["film_runtime_ticks"] = detail.get("RunTimeTicks")
    out["film_container"] = detail["MediaSources"][0]["Container"]

    info = api.get_play_info(film["Id"], profile={
        "DirectPlayProfiles": [{"Container": "mkv,mp4", "Type": "Video",
                                "VideoCodec": "h264", "AudioCodec": "aac"}],
        "TranscodingProfiles": [{"Container": "ts", "Type": "Video", "VideoCodec": "h264",
                                 "AudioCodec": "aac", "Protocol": "hls"}],
    })
    source = info["MediaSources"][0]
    out["direct_play"] = source["SupportsDirectPlay"]
    play_session = info["PlaySessionId"]

    stream_url = api.video_url(film["Id"]).replace("{DeviceId}", "python-e2e-1")
    ranged = requests.get(stream_url, headers={"Range": "bytes=1000-4999"}, timeout=30)
    out["range_status"] = ranged.status_code
    out["range_content_range"] = ranged.headers.get("Content-Range")
    out["range_hex"] = ranged.content.hex()

    # Jellyfin marks items shorter than 300 s as played at once, so resume a long film half way.
    long_film = api.get_item(next(i for i in items if i["Name"] == "Long Voyage")["Id"])
    ticks = long_film["RunTimeTicks"] // 2
    base = {"ItemId": long_film["Id"], "PlaySessionId": play_session,
            "MediaSourceId": long_film["Id"]}
    api.session_playing(dict(base, PositionTicks=0, PlayMethod="DirectPlay"))
    api.session_progress(dict(base, PositionTicks=ticks, IsPaused=False, EventName="timeupdate"))
    api.session_stop(dict(base, PositionTicks=ticks))
    resume = api.get_resume_items()["Items"]
    out["resume"] = [(i["Name"], i["UserData"]["PlaybackPositionTicks"]) for i in resume]
    out["resume_expected_ticks"] = ticks

    # QuickConnect: a second device asks, the logged-in user approves, the second device logs in.
    other = new_client("python-e2e-2")
    other.auth.connect_to_address(url)
    qc_api = other.auth.API
    assert qc_api.quick_connect_enabled(url), "QuickConnect is disabled"
    request = qc_api.quick_connect_initiate(url)
    assert len(request["Code"]) == 6, request
    api._post("QuickConnect/Authorize", params={"code": request["Code"]})
    deadline = time.time() + 10
    while not qc_api.quick_connect_state(url, request["Secret"]).get("Authenticated"):
        assert time.time() < deadline, "QuickConnect was never authenticated"
        time.sleep(0.1)
    qc_result = other.auth.login_with_quick_connect(url, request["Secret"])
    out["quick_connect_user"] = qc_result["User"]["Name"]
    out["quick_connect_token_differs"] = qc_result["AccessToken"] != result["AccessToken"]

    print(json.dumps(out))


if __name__ == "__main__":
    main()
