//! The `tiaojie` binary as a newcomer and an operator use it: start on defaults, refuse a bad
//! configuration by naming the key, issue tokens, stop gracefully on SIGTERM, keep tokens out
//! of the logs, and run with EdDSA keys it generated.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_tiaojie");

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tiaojie-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn tiaojie(data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("TIAOJIE_SERVER_DATA_DIR", data_dir)
        .env("TIAOJIE_SERVER_LISTEN", "127.0.0.1:0")
        .env("TIAOJIE_MEDIA_BIND", "127.0.0.1:0")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts `tiaojie serve`; returns the child, its address and a channel of its stderr lines.
fn serve(
    data_dir: &Path,
    env: &[(&str, &str)],
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut child = tiaojie(data_dir, env)
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn tiaojie serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let Ok(line) =
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not print its address");
        };
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split_whitespace().next().expect("address").to_string();
            return (child, addr, rx);
        }
    }
}

fn token(data_dir: &Path, env: &[(&str, &str)], room: &str, identity: &str, role: &str) -> String {
    let out = tiaojie(data_dir, env)
        .args([
            "token",
            "create",
            "--room",
            room,
            "--identity",
            identity,
            "--name",
            "张三",
            "--role",
            role,
            "--ttl",
            "1h",
        ])
        .output()
        .expect("token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

async fn next_json<S>(ws: &mut S) -> Option<Value>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .ok()??
        {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Message::Close(frame)) => {
                return Some(json!({"type": "(close)", "code": frame.map(|f| u16::from(f.code))}));
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[test]
fn a_bad_configuration_value_stops_start_up_naming_the_key() {
    let dir = temp_dir("badcfg");
    let out = tiaojie(&dir, &[("TIAOJIE_SIGNALING_MAX_MESSAGE_BYTES", "lots")])
        .arg("serve")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TIAOJIE_SIGNALING_MAX_MESSAGE_BYTES")
            && stderr.contains("max_message_bytes"),
        "{stderr}"
    );

    let file = dir.join("bad.toml");
    std::fs::write(&file, "[server]\nlisten = \"nowhere\"\n").expect("write");
    let out = tiaojie(&dir, &[])
        .env_remove("TIAOJIE_SERVER_LISTEN")
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listen"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn serve_issue_join_and_stop_on_sigterm() {
    let dir = temp_dir("serve");
    let env = [("TIAOJIE_LOG_LEVEL", "debug")];
    let (mut child, addr, logs) = serve(&dir, &env);
    let secret = dir.join("jwt-secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret)
            .expect("secret written on first run")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(dir.join("recording-key.der"))
            .expect("recording key written on first run")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        dir.join("tiaojie.db").exists(),
        "SQLite created in the data dir"
    );

    let token = token(&dir, &env, "room-a", "alice", "party");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("connect");
    ws.send(Message::text(
        json!({"type": "join", "id": 1, "room": "room-a", "token": token}).to_string(),
    ))
    .await
    .expect("send");
    let joined = next_json(&mut ws).await.expect("reply");
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["you"]["name"], "张三");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let shutdown = next_json(&mut ws).await.expect("told of shutdown");
    assert_eq!(shutdown["type"], "server.shutdown");
    let close = next_json(&mut ws).await.expect("close");
    assert_eq!(close["code"], 1001);
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "graceful stop exits 0: {exit:?}");

    let log: Vec<String> = logs.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("joined")), "{log:?}");
    assert!(
        !log.iter().any(|l| l.contains(&token)),
        "a token appeared in the log"
    );
    let sig = token.rsplit('.').next().unwrap_or_default();
    assert!(
        !log.iter().any(|l| l.contains(sig)),
        "a token signature appeared in the log"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn eddsa_keys_from_keys_generate() {
    let dir = temp_dir("eddsa");
    let out = Command::new(BIN)
        .args(["keys", "generate", "--out"])
        .arg(dir.join("keys"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let private = dir.join("keys/tiaojie-ed25519.pem");
    let public = dir.join("keys/tiaojie-ed25519.pub.pem");
    let (private_s, public_s) = (private.display().to_string(), public.display().to_string());
    let env = [
        ("TIAOJIE_AUTH_ALGORITHM", "EdDSA"),
        ("TIAOJIE_AUTH_ED25519_PRIVATE_KEY", private_s.as_str()),
        ("TIAOJIE_AUTH_ED25519_PUBLIC_KEY", public_s.as_str()),
    ];
    let (mut child, addr, _logs) = serve(&dir, &env);
    let token = token(&dir, &env, "r", "m", "mediator");
    let header: Value =
        serde_json::from_slice(&base64_url_decode(token.split('.').next().expect("header")))
            .expect("header json");
    assert_eq!(header["alg"], "EdDSA");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("connect");
    ws.send(Message::text(
        json!({"type": "join", "room": "r", "token": token}).to_string(),
    ))
    .await
    .expect("send");
    assert_eq!(next_json(&mut ws).await.expect("reply")["type"], "joined");
    // Refuses to overwrite a key.
    let again = Command::new(BIN)
        .args(["keys", "generate", "--out"])
        .arg(dir.join("keys"))
        .output()
        .expect("run");
    assert!(!again.status.success());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    std::fs::remove_dir_all(dir).ok();
}

fn base64_url_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

/// `tiaojie recording verify DIR` passes an untouched recording and names a one-byte change.
#[test]
fn recording_verify_passes_a_clean_recording_and_names_a_changed_byte() {
    use tiaojie_recorder::{CaptureConfig, Packet, Recording, SigningKey};
    let dir = temp_dir("recording").join("rec");
    let (key, _) = SigningKey::generate().expect("key");
    let config = CaptureConfig {
        segment_bytes: 4_000,
        ..CaptureConfig::default()
    };
    let mut r = Recording::create(&dir, "rec-1", config, key).expect("create");
    for i in 0..100u64 {
        r.write(&Packet {
            track: "party-a-audio",
            arrival_us: 1_000 + i * 20_000,
            seq: i,
            rtp_time: i * 960,
            marker: false,
            keyframe: false,
            audio_level: None,
            payload: &[0x55; 120],
        })
        .expect("write");
    }
    r.finish().expect("finish");

    let verify = || {
        Command::new(BIN)
            .args(["recording", "verify"])
            .arg(&dir)
            .output()
            .expect("run")
    };
    let clean = verify();
    let out = String::from_utf8_lossy(&clean.stdout);
    assert!(clean.status.success(), "{out}");
    assert!(out.contains("verified"), "{out}");

    let segment = dir.join("party-a-audio/000001.seg");
    let mut data = std::fs::read(&segment).expect("segment");
    data[100] ^= 0x80;
    std::fs::write(&segment, data).expect("tamper");
    let tampered = verify();
    let out = String::from_utf8_lossy(&tampered.stdout);
    assert_eq!(tampered.status.code(), Some(1), "{out}");
    assert!(
        out.contains("party-a-audio/000001.seg (chain entry 0) was modified in bytes 0.."),
        "{out}"
    );
}

#[tokio::test]
async fn audit_verify_recomputes_the_chain_in_the_configured_database() {
    let dir = temp_dir("audit");
    let store =
        tiaojie_store::Store::connect(&format!("sqlite:{}", dir.join("tiaojie.db").display()), 1)
            .await
            .expect("store");
    for action in [
        tiaojie_domain::AuditAction::Act(tiaojie_domain::Action::RecordingRead),
        tiaojie_domain::AuditAction::RecordingDownload,
    ] {
        store
            .audit(&tiaojie_domain::AuditEntry::new(
                1,
                "m",
                "mediator",
                action,
                "recording:r",
                "",
            ))
            .await
            .expect("audit");
    }
    store.close().await;
    let out = tiaojie(&dir, &[])
        .args(["audit", "verify"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2 audit entries"), "{text}");
    assert!(text.contains("verified"), "{text}");
    std::fs::remove_dir_all(dir).ok();
}
