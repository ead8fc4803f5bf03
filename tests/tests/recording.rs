//! Recording end to end: headless webrtc-rs participants publishing real Opus tones (one
//! frequency each) and VP8 through the SFU; the recorder's files checked with ffprobe/ffmpeg;
//! the evidence checked with `verify`; access by role through the API, with the audit log.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tiaojie_domain::Role;
use tiaojie_recorder::{Problem, verify};
use tiaojie_tests::child::{ServerProcess, Tokens};
use tiaojie_tests::participant::{Participant, ParticipantOptions};
use tiaojie_tests::{Backend, TestServer};

/// One scenario at a time: each runs several WebRTC peers plus the SFU on two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn speaker(hz: f32) -> ParticipantOptions {
    ParticipantOptions {
        loudness: 0.0,
        tone_hz: hz,
        video_bitrate_bps: 300_000,
        ..ParticipantOptions::default()
    }
}

/// `ffprobe`'s view of a file: (format duration, codec names).
fn probe(file: &Path) -> (f64, Vec<String>) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe (installed by scripts/test): {e}"));
    assert!(
        out.status.success(),
        "ffprobe cannot read {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    let codecs = v["streams"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (duration, codecs)
}

/// The file decoded to 48 kHz mono samples by ffmpeg.
fn decode(file: &Path) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "s16le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg cannot decode {}",
        file.display()
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Amplitude of `hz` in `samples` (Goertzel).
fn tone(samples: &[i16], hz: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * hz / 48_000.0).cos();
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for &x in samples {
        let next = f64::from(x) + k * a - b;
        b = a;
        a = next;
    }
    (a * a + b * b - k * a * b).max(0.0).sqrt() / samples.len().max(1) as f64
}

async fn finished(server: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = server
            .api(reqwest::Method::GET, &format!("/api/recordings/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        if body["state"] == "finished" {
            return body;
        }
        assert!(Instant::now() < deadline, "not finished: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn flip_byte(path: &Path) -> Vec<u8> {
    let original = std::fs::read(path).expect("read");
    let mut changed = original.clone();
    let at = changed.len() / 2;
    changed[at] ^= 0x20;
    std::fs::write(path, &changed).expect("write");
    original
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_three_party_session_gives_playable_files_a_mixed_track_and_verified_evidence() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.recording.segment_age = Duration::from_secs(1);
    })
    .await;
    let room = "rec-room";
    let ws = server.ws_url();
    let mut people = Vec::new();
    for (identity, role, hz) in [
        ("mediator", Role::Mediator, 440.0),
        ("party-a", Role::Party, 660.0),
        ("party-b", Role::Party, 990.0),
    ] {
        let token = server.token(room, identity, role);
        let p = Participant::join(&ws, room, identity, &token, speaker(hz))
            .await
            .unwrap_or_else(|e| panic!("{identity} joins: {e:#}"));
        assert_eq!(p.joined["recording"]["state"], "off", "{}", p.joined);
        people.push(p);
    }
    for p in &people {
        for other in ["mediator", "party-a", "party-b"] {
            if other != p.identity {
                p.until(Duration::from_secs(10), other, |r| {
                    r.packets(other, "audio") > 0 && r.packets(other, "video") > 0
                })
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
            }
        }
    }

    // A party cannot start recording: it lacks the record grant.
    let refused = people[1]
        .request(json!({"type": "record", "action": "start"}))
        .await
        .expect("reply");
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{refused}"
    );

    let started = people[0]
        .request(json!({"type": "record", "action": "start", "mode": "audio_video"}))
        .await
        .expect("reply");
    assert_eq!(started["type"], "ok", "{started}");
    let mut id = String::new();
    for p in people.iter_mut() {
        let e = p
            .event("recording.updated", Duration::from_secs(5))
            .await
            .expect("everyone is told");
        assert_eq!(e["recording"]["state"], "recording", "{e}");
        assert_eq!(e["recording"]["mode"], "audio_video");
        id = e["recording"]["id"].as_str().expect("id").to_string();
    }
    let start_ms = now_ms();

    // Each speaks alone for 1.5 s, in turn.
    let mut slots = Vec::new();
    for (i, p) in people.iter().enumerate() {
        p.set_loudness(0.5);
        let from = now_ms();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        p.set_loudness(0.0);
        slots.push((i, from, now_ms()));
    }
    // A late joiner is told on entry.
    let late_token = server.token(room, "observer", Role::Observer);
    let late = Participant::join(
        &ws,
        room,
        "observer",
        &late_token,
        ParticipantOptions::silent_observer(),
    )
    .await
    .expect("observer joins");
    assert_eq!(
        late.joined["recording"]["state"], "recording",
        "{}",
        late.joined
    );
    assert_eq!(late.joined["recording"]["id"], id.as_str());
    tokio::time::sleep(Duration::from_millis(800)).await;

    let stopped = people[0]
        .request(json!({"type": "record", "action": "stop"}))
        .await
        .expect("reply");
    assert_eq!(stopped["type"], "ok", "{stopped}");
    let session_s = (now_ms() - start_ms) as f64 / 1000.0;
    let e = people[1]
        .event("recording.updated", Duration::from_secs(5))
        .await
        .expect("told of the stop");
    assert_eq!(e["recording"]["state"], "off", "{e}");

    let view = finished(&server, &id).await;
    assert_eq!(view["room"], room);
    assert_eq!(view["complete"], true);
    // Those still in the room are shown the chain head the signed manifest commits to.
    let told = people[2]
        .event("recording.finished", Duration::from_secs(10))
        .await
        .expect("told the recording is saved");
    assert_eq!(told["recording"], id.as_str());
    assert_eq!(told["chain_head"], view["chain_head"], "{told}");
    let dir: PathBuf = server.config.server.data_dir.join("recordings").join(&id);
    let files: Vec<Value> = view["files"].as_array().cloned().unwrap_or_default();
    let kinds = |k: &str| files.iter().filter(|f| f["kind"] == k).count();
    assert_eq!(
        (kinds("audio"), kinds("video"), kinds("mixed")),
        (3, 3, 1),
        "{files:?}"
    );
    for f in &files {
        let path = dir.join(f["file"].as_str().expect("file"));
        let (duration, codecs) = probe(&path);
        let expected: &[&str] = match f["kind"].as_str() {
            Some("video") => &["vp8", "opus"],
            _ => &["opus"],
        };
        assert_eq!(codecs, expected, "{}", path.display());
        assert!(
            (duration - session_s).abs() <= session_s * 0.05,
            "{}: {duration:.2} s, the session {session_s:.2} s",
            path.display()
        );
    }

    // The mix: each speaker's tone dominates their own slot (its middle second).
    let mixed = decode(&dir.join("derived/mixed.opus"));
    let recording_start = view["started_at"].as_i64().expect("started_at");
    for (i, from, to) in slots {
        let a = ((from - recording_start + 250).max(0) as usize) * 48;
        let b = ((to - recording_start - 250).max(0) as usize) * 48;
        let window = &mixed[a.min(mixed.len())..b.min(mixed.len())];
        assert!(window.len() > 24_000, "slot {i} is outside the mix");
        let levels: Vec<f64> = [440.0, 660.0, 990.0]
            .iter()
            .map(|hz| tone(window, *hz))
            .collect();
        let own = levels[i];
        assert!(
            own > 1000.0,
            "slot {i}: speaker's tone too weak: {levels:?}"
        );
        for (j, other) in levels.iter().enumerate() {
            if j != i {
                assert!(own > other * 10.0, "slot {i}: {levels:?}");
            }
        }
    }

    // The evidence verifies, and one changed byte anywhere is caught.
    let report = verify(&dir);
    assert!(report.problems.is_empty() && report.manifest, "{report}");
    let segment = std::fs::read_dir(dir.join("mediator-audio-m0"))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(Result::ok)
        .map(|e| e.path())
        .or_else(|| {
            std::fs::read_dir(&dir).ok().and_then(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir() && e.file_name() != "derived")
                    .find_map(|e| std::fs::read_dir(e.path()).ok()?.flatten().next())
                    .map(|e| e.path())
            })
        })
        .expect("a sealed segment");
    for path in [
        segment,
        dir.join("derived/mixed.opus"),
        dir.join(files[1]["file"].as_str().expect("file")),
        dir.join("manifest.json"),
        dir.join("events.jsonl"),
    ] {
        let original = flip_byte(&path);
        let report = verify(&dir);
        assert!(
            !report.problems.is_empty(),
            "a changed byte in {} went unnoticed",
            path.display()
        );
        std::fs::write(&path, original).expect("restore");
    }
    assert!(verify(&dir).problems.is_empty());

    // Access: a party's token can neither list nor fetch; the mediator's can; all audited.
    let party = server.token(room, "party-a", Role::Party);
    let mediator = server.token(room, "mediator", Role::Mediator);
    let other_room = server.token("elsewhere", "mediator", Role::Mediator);
    let get = reqwest::Method::GET;
    let mixed_path = format!("/api/recordings/{id}/files/derived/mixed.opus");
    for path in [
        "/api/recordings".to_string(),
        format!("/api/recordings/{id}"),
        mixed_path.clone(),
    ] {
        let (status, body) = server.api_as(&party, get.clone(), &path, None).await;
        assert_eq!(status, 403, "party reads {path}: {body}");
    }
    let (status, body) = server
        .api_as(
            &other_room,
            get.clone(),
            &format!("/api/recordings/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 403, "another room's mediator: {body}");
    let (status, list) = server
        .api_as(&mediator, get.clone(), "/api/recordings", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let response = server
        .http
        .get(format!("http://{}{mixed_path}", server.addr))
        .bearer_auth(&mediator)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()[reqwest::header::CONTENT_TYPE],
        "audio/ogg; codecs=opus"
    );
    let bytes = response.bytes().await.expect("body");
    assert_eq!(
        bytes.as_ref(),
        std::fs::read(dir.join("derived/mixed.opus")).expect("file")
    );
    let (status, audit) = server
        .api(
            get.clone(),
            &format!("/api/audit?target=recording:{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let actions: Vec<(String, String)> = audit
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_string(),
                e["action"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for expected in [
        ("party-a", "recording.denied"),
        ("mediator", "recording.download"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, b)| (a.as_str(), b.as_str()) == expected),
            "{expected:?} not in the audit log: {actions:?}"
        );
    }

    // Deleting is an admin's, audited.
    let (status, _) = server
        .api_as(
            &mediator,
            reqwest::Method::DELETE,
            &format!("/api/recordings/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = server
        .api(
            reqwest::Method::DELETE,
            &format!("/api/recordings/{id}?reason=test"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert!(!dir.exists());

    late.close().await;
    for p in &people {
        p.close().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_policy_and_state_are_enforced() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // On PostgreSQL: the room policy column and the audit chain on the other backend.
    let server =
        TestServer::start_with(Backend::Postgres, |c| c.recording.allowed = "audio".into()).await;
    let room = "policy-room";
    let mut m = server.join(room, "m", Role::Mediator).await;
    let reply = m
        .request(json!({"type": "record", "action": "start", "mode": "audio_video"}))
        .await;
    assert_eq!(
        reply["code"], "forbidden",
        "the server allows audio at most: {reply}"
    );
    let reply = m.request(json!({"type": "record", "action": "stop"})).await;
    assert_eq!(reply["code"], "recording_state", "{reply}");
    let reply = m
        .request(json!({"type": "record", "action": "start", "mode": "loud"}))
        .await;
    assert_eq!(reply["code"], "invalid_message", "{reply}");
    // The room's own policy lowers the limit further.
    let (status, body) = server
        .api(
            reqwest::Method::PUT,
            &format!("/api/rooms/{room}/recording-policy"),
            Some(json!({"recording": "off"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let reply = m
        .request(json!({"type": "record", "action": "start"}))
        .await;
    assert_eq!(reply["code"], "forbidden", "{reply}");
    server
        .api(
            reqwest::Method::PUT,
            &format!("/api/rooms/{room}/recording-policy"),
            Some(json!({"recording": null})),
        )
        .await;
    // Audio only, started by an admin through the API; pause and resume are events.
    let (status, body) = server
        .api(
            reqwest::Method::POST,
            &format!("/api/rooms/{room}/recording"),
            Some(json!({"action": "start"})),
        )
        .await;
    assert_eq!(
        (status, body["mode"].as_str()),
        (200, Some("audio")),
        "{body}"
    );
    let (e, _) = m.expect_skipping("recording.updated").await;
    assert_eq!(e["recording"]["state"], "recording");
    let reply = m
        .request(json!({"type": "record", "action": "pause"}))
        .await;
    assert_eq!(reply["type"], "ok", "{reply}");
    let (e, _) = m.expect_skipping("recording.updated").await;
    assert_eq!(e["recording"]["state"], "paused");
    let reply = m
        .request(json!({"type": "record", "action": "pause"}))
        .await;
    assert_eq!(reply["code"], "recording_state", "{reply}");
    let reply = m
        .request(json!({"type": "record", "action": "resume"}))
        .await;
    assert_eq!(reply["type"], "ok", "{reply}");
    // Leaving the room (the last one out) stops the recording; it finishes on its own.
    let id = e["recording"]["id"].as_str().expect("id").to_string();
    let reply = m.request(json!({"type": "leave"})).await;
    assert_eq!(reply["type"], "left", "{reply}");
    let view = finished(&server, &id).await;
    let events: Vec<String> = std::fs::read_to_string(
        server
            .config
            .server
            .data_dir
            .join("recordings")
            .join(&id)
            .join("events.jsonl"),
    )
    .expect("events")
    .lines()
    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    .filter_map(|v| v["event"].as_str().map(str::to_string))
    .collect();
    for kind in ["started", "present", "paused", "resumed", "stopped"] {
        assert!(
            events.iter().any(|e| e == kind),
            "{kind} missing: {events:?}"
        );
    }
    assert_eq!(view["mode"], "audio");
    // The policy changes were audited, in an intact hash chain.
    let (status, check) = server
        .api(reqwest::Method::GET, "/api/audit/verify", None)
        .await;
    assert_eq!(status, 200, "{check}");
    assert!(check["entries"].as_u64() >= Some(2), "{check}");
    assert_eq!(check["problems"], json!([]), "{check}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_recording_is_recovered_from_its_sealed_segments() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let bin = std::env::current_exe()
        .ok()
        .and_then(|t| Some(t.parent()?.parent()?.join("tiaojie")))
        .filter(|b| b.exists())
        .expect("target/debug/tiaojie (cargo test --workspace builds it)");
    let secret = "recording-crash-secret-0123456789abcdef";
    let env = [("TIAOJIE_RECORDING_SEGMENT_AGE", "1s")];
    let server = ServerProcess::start(&bin, secret, &env).expect("server starts");
    let tokens = Tokens::new(secret).expect("tokens");
    let ws = format!("ws://{}/ws", server.addr);
    let room = "crash-room";
    let m = Participant::join(
        &ws,
        room,
        "m",
        &tokens.issue(room, "m", "Mediator", Role::Mediator),
        ParticipantOptions {
            loudness: 0.4,
            ..speaker(440.0)
        },
    )
    .await
    .expect("mediator joins");
    let p = Participant::join(
        &ws,
        room,
        "p",
        &tokens.issue(room, "p", "Party", Role::Party),
        ParticipantOptions {
            loudness: 0.4,
            ..speaker(660.0)
        },
    )
    .await
    .expect("party joins");
    m.until(Duration::from_secs(10), "p's media", |r| {
        r.packets("p", "audio") > 0
    })
    .await
    .expect("media flows");
    let reply = m
        .request(json!({"type": "record", "action": "start"}))
        .await
        .expect("reply");
    assert_eq!(reply["type"], "ok", "{reply}");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let dir = server.kill();
    p.close().await;
    m.close().await;

    let recordings = dir.join("recordings");
    let recording = std::fs::read_dir(&recordings)
        .expect("recordings dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("recording.json").exists())
        .expect("the recording's directory");
    let before = verify(&recording);
    assert!(
        before
            .problems
            .iter()
            .all(|p| matches!(p, Problem::Unsigned { .. })),
        "only the tail after the last checkpoint may be unsigned: {before}"
    );
    assert!(
        before.entries >= 4,
        "sealed segments survive a kill: {before}"
    );

    let out = Command::new(&bin)
        .args(["recording", "recover"])
        .arg(&recording)
        .env("TIAOJIE_SERVER_DATA_DIR", &dir)
        .output()
        .expect("recover runs");
    assert!(
        out.status.success(),
        "recover: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(recording.join("manifest.json")).expect("manifest written"),
    )
    .expect("manifest json");
    assert_eq!(manifest["complete"], false);
    assert!(
        manifest["events"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["cause"] == "server_restart"),
        "the interruption is an event"
    );
    let sealed_s = (manifest["ended_us"].as_u64().unwrap_or(0)
        - manifest["started_us"].as_u64().unwrap_or(0)) as f64
        / 1e6;
    assert!(sealed_s >= 2.0, "what was sealed: {sealed_s} s");
    for f in manifest["derived"].as_array().into_iter().flatten() {
        let path = recording.join(f["file"].as_str().expect("file"));
        let (duration, codecs) = probe(&path);
        assert!(!codecs.is_empty(), "{}", path.display());
        assert!(
            (duration - sealed_s).abs() <= sealed_s * 0.1 + 0.1,
            "{}: {duration:.2} s, sealed {sealed_s:.2} s",
            path.display()
        );
    }
    // The signed manifest covers every sealed segment; `verify` passes on what remains.
    let after = verify(&recording);
    assert!(after.manifest && after.problems.is_empty(), "{after}");

    // Restarted on the same data, the server lists it as finished (incomplete).
    let again = ServerProcess::start_in(&bin, &dir, secret, &[]).expect("restarts");
    let admin = tokens.issue_admin("ops");
    let list: Value = reqwest::Client::new()
        .get(format!("http://{}/api/recordings", again.addr))
        .bearer_auth(admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list[0]["state"], "finished", "{list}");
    assert_eq!(list[0]["complete"], false, "{list}");
    again.stop();
}
