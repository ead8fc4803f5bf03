//! `recorder-bench`: what capture costs (BENCHMARKS.md, issue 5).
//!
//! Writes `--seconds` of session time for `--audio` Opus-sized tracks (50 packets/s of 120 bytes)
//! and `--video` VP8-sized tracks (~1.5 Mbit/s: 150 packets/s of 1,200 bytes) into a real
//! recording on this machine's disk — segments sealed with fsync, chain entries fsynced,
//! checkpoints signed — as fast as one thread can, and reports the thread's CPU time per session
//! second: how many such tracks one core keeps up with, and what sealing (fsync) costs in wall
//! time. Then `verify` reads it all back.
//!
//! `--mix-minutes M` then measures the derived files of a `--speakers`-party session of M
//! minutes: real Opus (each speaker a tone in 5 s turns, silence otherwise, 20 ms packets with
//! RFC 6464 levels as a browser sends them) is captured, and the thread's CPU time for `derive` — one Ogg file per
//! track plus the mixed track (every packet decoded, summed, re-encoded) — is reported as
//! session time per CPU time.

use std::time::Instant;

use clap::Parser;
use tiaojie_recorder::{CaptureConfig, EventKind, Packet, Recording, SigningKey, verify};
use tiaojie_tests::child::cpu_seconds_of;

#[derive(Parser)]
#[command(about = "Recorder capture benchmark: synthetic tracks into a real, fsynced recording")]
struct Cli {
    /// Audio tracks (50 packets/s of 120 bytes).
    #[arg(long, default_value_t = 200)]
    audio: usize,
    /// Video tracks (150 packets/s of 1,200 bytes).
    #[arg(long, default_value_t = 20)]
    video: usize,
    /// Session seconds recorded.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Minutes of the session whose derived files are timed (0: skip).
    #[arg(long, default_value_t = 60)]
    mix_minutes: u64,
    /// Speakers in that session.
    #[arg(long, default_value_t = 4)]
    speakers: usize,
    /// Send no RFC 6464 levels (as a sender without the extension): every packet is decoded.
    #[arg(long)]
    no_levels: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    println!("# recorder-bench, {} s of session per phase\n", cli.seconds);
    phase("audio", cli.audio, false, cli.seconds)?;
    phase("video", cli.video, true, cli.seconds)?;
    if cli.mix_minutes > 0 {
        mix(cli.speakers, cli.mix_minutes, !cli.no_levels)?;
    }
    Ok(())
}

/// Captures a `speakers`-party session of `minutes` of real Opus and times `derive`.
fn mix(speakers: usize, minutes: u64, levels: bool) -> anyhow::Result<()> {
    let dir =
        std::env::temp_dir().join(format!("tiaojie-recorder-bench-mix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (key, _) = SigningKey::generate().map_err(anyhow::Error::msg)?;
    let mut recording = Recording::create(&dir, "bench-mix", CaptureConfig::default(), key)?;
    let start_us = tiaojie_recorder::RecordingInfo::read(&dir)?.created_us;
    recording.event(EventKind::Started {
        room: "bench".into(),
        mode: "audio".into(),
        by: "bench".into(),
        private_rooms: false,
    })?;
    // One second of each speaker's tone and of silence, encoded once and sent in a loop.
    let mut voices = Vec::new();
    for s in 0..speakers {
        let name = format!("speaker{s}-audio-m0");
        recording.event(EventKind::Track {
            track: name.clone(),
            identity: format!("speaker{s}"),
            kind: "audio".into(),
            codec: "audio/opus".into(),
            clock_rate: 48_000,
        })?;
        let mut encoder =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)?;
        let hz = 300.0 + 170.0 * s as f32;
        let mut out = vec![0u8; 1500];
        let mut talk = Vec::new();
        let mut quiet = Vec::new();
        for i in 0..50 {
            let pcm: Vec<i16> = (0..960)
                .map(|n| {
                    let t = (i * 960 + n) as f32 / 48_000.0;
                    ((2.0 * std::f32::consts::PI * hz * t).sin() * 8_000.0) as i16
                })
                .collect();
            let len = encoder.encode(&pcm, &mut out)?;
            talk.push(out[..len].to_vec());
            let len = encoder.encode(&[0i16; 960], &mut out)?;
            quiet.push(out[..len].to_vec());
        }
        voices.push((name, talk, quiet));
    }
    let ticks = minutes * 60 * 50;
    for tick in 0..ticks {
        for (s, (name, talk, quiet)) in voices.iter().enumerate() {
            let speaking = (tick / 250) as usize % speakers == s;
            let packet = if speaking { talk } else { quiet }[(tick % 50) as usize].as_slice();
            recording.write(&Packet {
                track: name,
                arrival_us: start_us + 5_000 + tick * 20_000,
                seq: tick,
                rtp_time: tick * 960,
                marker: false,
                keyframe: false,
                // As a browser marks them: loud while speaking, silence (127) otherwise.
                audio_level: levels.then_some(if speaking { 20 } else { 127 }),
                payload: packet,
            })?;
        }
    }
    recording.finish()?;

    let cpu0 = cpu_seconds_of("/proc/thread-self/stat");
    let t0 = Instant::now();
    let derived = tiaojie_recorder::derive::derive(&dir)?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds_of("/proc/thread-self/stat") - cpu0;
    let session = (minutes * 60) as f64;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "## derived files of a {speakers}-party, {minutes}-minute session ({})",
        if levels {
            "with audio levels"
        } else {
            "without audio levels: every packet decoded"
        }
    );
    println!(
        "made:                   {} files ({} Ogg copies + the mix)",
        derived.files.len(),
        derived.files.len().saturating_sub(1)
    );
    println!(
        "derive thread:          {cpu:.1} s CPU, {wall:.1} s wall → {:.0}× real time per core ({:.0}× wall)\n",
        session / cpu.max(0.01),
        session / wall.max(0.01)
    );
    Ok(())
}

/// Records `tracks` tracks of one kind for `seconds` of session time; prints the figures.
fn phase(label: &str, tracks: usize, video: bool, seconds: u64) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "tiaojie-recorder-bench-{label}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let (key, _) = SigningKey::generate().map_err(anyhow::Error::msg)?;
    let mut recording = Recording::create(&dir, "bench", CaptureConfig::default(), key)?;
    let (per_tick, size, clock) = if video {
        (3, 1200, 1_800)
    } else {
        (1, 120, 960)
    };
    let payload = vec![0x5au8; size];
    let names: Vec<String> = (0..tracks).map(|i| format!("p{i}-{label}")).collect();

    let cpu0 = cpu_seconds_of("/proc/thread-self/stat");
    let t0 = Instant::now();
    let mut packets = 0u64;
    // Every 20 ms of session time: one packet per audio track, three per video track.
    for tick in 0..seconds * 50 {
        let arrival_us = 1_700_000_000_000_000 + tick * 20_000;
        for name in &names {
            for k in 0..per_tick {
                recording.write(&Packet {
                    track: name,
                    arrival_us,
                    seq: tick * per_tick + k,
                    rtp_time: tick * clock,
                    marker: k == per_tick - 1,
                    keyframe: video && tick % 250 == 0 && k == 0,
                    audio_level: None,
                    payload: &payload,
                })?;
                packets += 1;
            }
        }
    }
    recording.finish()?;
    let wall = t0.elapsed();
    let cpu = cpu_seconds_of("/proc/thread-self/stat") - cpu0;

    let v0 = Instant::now();
    let report = verify(&dir);
    let verify_wall = v0.elapsed();
    anyhow::ensure!(report.problems.is_empty(), "verify failed:\n{report}");
    let _ = std::fs::remove_dir_all(&dir);

    let bytes = packets * size as u64;
    let cpu_per_session_second = (cpu / seconds as f64).max(1e-9);
    println!(
        "## {tracks} {label} tracks ({} packets/s of {size} bytes each)",
        per_tick * 50
    );
    println!(
        "captured:               {packets} packets, {:.1} MiB, {} sealed segments",
        bytes as f64 / 1048576.0,
        report.entries
    );
    println!(
        "capture thread:         {cpu:.2} s CPU, {:.2} s wall ({:.0} packets per CPU-second)",
        wall.as_secs_f64(),
        packets as f64 / cpu.max(0.01)
    );
    println!(
        "one core keeps up with: ≈ {:.0} {label} tracks in real time (CPU); ≈ {:.0} counting the wall time of writes and fsyncs",
        tracks as f64 / cpu_per_session_second,
        tracks as f64 * seconds as f64 / wall.as_secs_f64().max(1e-9)
    );
    println!(
        "verify:                 {:.2} s ({:.0} MiB/s)\n",
        verify_wall.as_secs_f64(),
        bytes as f64 / 1048576.0 / verify_wall.as_secs_f64().max(1e-9)
    );
    Ok(())
}
