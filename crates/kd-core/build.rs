//! Facts about this build that dynamically loaded plugins must share with their host: the
//! compiler's version and a hash of kd-core's own source (the same version number with a
//! changed trait would load and then crash). Read by `src/plugin/fingerprint.rs`.

use std::path::Path;

fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for &byte in bytes {
        *hash ^= byte as u64;
        *hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kd_dynamic)");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=KDCORE_RUSTC={version}");
    // The sources sit beside this script. `cargo xtask build-dynamic` builds kd-core from a
    // generated manifest elsewhere that names this script by absolute path; a plain build names
    // it relative to the workspace root, and then the manifest directory is the script's.
    let script = Path::new(file!());
    let root = if script.is_absolute() {
        script.parent().expect("build.rs has a folder").join("src")
    } else {
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("src")
    };
    println!("cargo::rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for file in files {
        fnv1a(
            &mut hash,
            file.strip_prefix(&root)
                .unwrap_or(&file)
                .to_string_lossy()
                .as_bytes(),
        );
        fnv1a(&mut hash, &std::fs::read(&file).unwrap_or_default());
    }
    println!("cargo::rustc-env=KDCORE_SOURCE_HASH={hash:016x}");
}
