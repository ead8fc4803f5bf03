//! The `tiaojie-court-bridge` binary's command line: the key is generated once and kept, and a
//! bad configuration is refused with the key it is about.

use std::process::Command;

fn bridge(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tiaojie-court-bridge"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn the_key_is_generated_once_and_printed() {
    let dir = std::env::temp_dir().join(format!("tiaojie-bridge-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("court-bridge.toml");
    std::fs::write(
        &config,
        format!(
            "server_url = \"ws://127.0.0.1:9/confirmation/bridge\"\n\
             server_public_key = \"{}\"\ndata_dir = \"{}\"\n",
            "A".repeat(43) + "=",
            dir.join("data").display()
        ),
    )
    .expect("config");
    let first = bridge(&config, &["key"]);
    assert!(first.status.success(), "{first:?}");
    let key = String::from_utf8_lossy(&first.stdout).trim().to_string();
    assert_eq!(key.len(), 44, "{key}");
    assert_eq!(
        String::from_utf8_lossy(&bridge(&config, &["key"]).stdout).trim(),
        key
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("data/bridge-key.der"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key is readable by its owner only"
        );
    }

    std::fs::write(
        &config,
        "server_url = \"http://x\"\nserver_public_key = \"\"\n",
    )
    .expect("config");
    let bad = bridge(&config, &["key"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("server_url"),
        "{bad:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
