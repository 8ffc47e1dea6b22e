//! The `kd` binary: everything lives in the kd-cli library (`lib.rs`).

fn main() -> std::process::ExitCode {
    kd_cli::main()
}
