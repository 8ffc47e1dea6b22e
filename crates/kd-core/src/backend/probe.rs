//! Whether a CUDA device could be opened here, decided without loading anything: burn-cuda
//! panics inside a device thread when the driver is missing, so the plan and `kd backends` ask
//! this probe first. It looks for an NVIDIA device node (`/dev/nvidiactl`, `/dev/nvidia0`, or
//! WSL's `/dev/dxg`) and for the driver library `libcuda.so.1` in `LD_LIBRARY_PATH` or the
//! usual folders. A pass means the driver is there, not that a kernel will run.

use std::path::Path;

/// Device nodes, one of which the NVIDIA driver creates.
const DEVICE_NODES: [&str; 3] = ["/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"];

/// Folders the driver library is installed in by distributions, the CUDA toolkit and WSL.
const DRIVER_DIRS: [&str; 5] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/cuda/lib64",
    "/usr/lib/wsl/lib",
];

/// Looks for what the CUDA runtime needs on this machine: a device node and `libcuda.so.1`.
///
/// # Errors
/// What is missing, in words (`no NVIDIA device node exists (…)`, `the driver library
/// libcuda.so.1 is not in …`).
pub fn probe_cuda_driver() -> Result<(), String> {
    probe_at(
        Path::new("/"),
        &std::env::var("LD_LIBRARY_PATH").unwrap_or_default(),
    )
}

/// The probe with the file system rooted at `root` (absolute paths are taken below it) and the
/// given `LD_LIBRARY_PATH`, so both outcomes can be tested on any machine.
fn probe_at(root: &Path, ld_library_path: &str) -> Result<(), String> {
    let under = |path: &str| root.join(path.trim_start_matches('/'));
    if !DEVICE_NODES.iter().any(|node| under(node).exists()) {
        return Err(format!(
            "no NVIDIA device node exists ({})",
            DEVICE_NODES.join(", ")
        ));
    }
    let found = ld_library_path
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(&under)
        .chain(DRIVER_DIRS.iter().map(|dir| under(dir)))
        .any(|dir| dir.join("libcuda.so.1").exists());
    if found {
        Ok(())
    } else {
        Err("the driver library libcuda.so.1 is not in LD_LIBRARY_PATH or the usual folders".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, path: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    #[test]
    fn no_device_node_is_named_first() {
        let root = tempfile::tempdir().unwrap();
        touch(root.path(), "usr/lib64/libcuda.so.1");
        let message = probe_at(root.path(), "").unwrap_err();
        assert!(message.starts_with("no NVIDIA device node exists (/dev/nvidiactl"));
    }

    #[test]
    fn a_node_without_the_driver_library_names_the_library() {
        let root = tempfile::tempdir().unwrap();
        touch(root.path(), "dev/nvidiactl");
        let message = probe_at(root.path(), "/opt/elsewhere").unwrap_err();
        assert!(message.contains("libcuda.so.1"), "{message}");
    }

    #[test]
    fn the_library_is_found_in_ld_library_path_or_the_usual_folders() {
        let root = tempfile::tempdir().unwrap();
        touch(root.path(), "dev/dxg");
        touch(root.path(), "opt/driver/libcuda.so.1");
        assert_eq!(probe_at(root.path(), "/x::/opt/driver"), Ok(()));
        let root = tempfile::tempdir().unwrap();
        touch(root.path(), "dev/nvidia0");
        touch(root.path(), "usr/local/cuda/lib64/libcuda.so.1");
        assert_eq!(probe_at(root.path(), ""), Ok(()));
    }

    #[test]
    fn the_probe_agrees_with_this_machine() {
        let has_node = DEVICE_NODES.iter().any(|n| Path::new(n).exists());
        match probe_cuda_driver() {
            Ok(()) => assert!(has_node),
            Err(message) => {
                assert!(message.contains("NVIDIA device node") || message.contains("libcuda"))
            }
        }
    }
}
