//! `recorder-bench`: what capture costs (BENCHMARKS.md, issue 5).
//!
//! Writes `--seconds` of session time for `--audio` Opus-sized tracks (50 packets/s of 120 bytes)
//! and `--video` VP8-sized tracks (~1.5 Mbit/s: 150 packets/s of 1,200 bytes) into a real
//! recording on this machine's disk — segments sealed with fsync, chain entries fsynced,
//! checkpoints signed — as fast as one thread can, and reports the thread's CPU time per session
//! second: how many such tracks one core keeps up with, and what sealing (fsync) costs in wall
//! time. Then `verify` reads it all back.

use std::time::Instant;

use clap::Parser;
use tiaojie_recorder::{CaptureConfig, Packet, Recording, SigningKey, verify};
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    println!("# recorder-bench, {} s of session per phase\n", cli.seconds);
    phase("audio", cli.audio, false, cli.seconds)?;
    phase("video", cli.video, true, cli.seconds)?;
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
