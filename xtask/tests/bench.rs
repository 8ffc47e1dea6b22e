//! `cargo xtask bench`: input it cannot use is refused with status 2 before anything runs.

use std::process::Command;

#[test]
fn vs_pytorch_needs_the_reference_models() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--quick", "--vs-pytorch"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--vs-pytorch needs --repdistiller"),
        "{stderr}"
    );
}

#[test]
fn rounds_must_be_one_to_twenty() {
    for rounds in ["0", "21", "two"] {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["bench", "--quick", "--rounds", rounds])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{rounds}: {stderr}");
        assert!(stderr.contains("--rounds"), "{rounds}: {stderr}");
    }
}
