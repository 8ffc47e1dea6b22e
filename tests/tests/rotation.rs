//! The random rotation through the binary: a short run trains with it, `kd plan` shows it, and
//! out-of-range values exit 2 naming their keys.

use kd_tests::{failure, kd, metrics, run_dir, success, tiny_config, write};

#[test]
fn a_run_trains_with_rotation_and_the_plan_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let extra = "[data.augment]\nrotation_degrees = 15\nrotation_interpolation = \"bilinear\"\n";
    let config = write(d, "r.toml", &tiny_config(d, "rot", "resnet8", 2, 1, extra));
    let config = config.to_str().unwrap();
    let plan = success(kd(d, &["plan", config]));
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.contains("rotation ±15° (Bilinear, fill 0), flip true"),
        "{plan}"
    );
    success(kd(d, &["train", config]));
    let rows = metrics(&run_dir(d, "rot"));
    assert!(!rows.is_empty());
}

#[test]
fn out_of_range_rotation_values_exit_2_naming_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = write(d, "r.toml", &tiny_config(d, "rot", "resnet8", 2, 1, ""));
    let plan = |sets: &[&str]| {
        let mut args = vec!["plan", config.to_str().unwrap()];
        for set in sets {
            args.extend(["--set", set]);
        }
        failure(kd(d, &args), 2)
    };
    let stderr = plan(&["data.augment.rotation_interpolation=\"cubic\""]);
    assert!(
        stderr.contains(
            "`data.augment.rotation_interpolation`: unknown variant `cubic`: must be one of \
             `nearest`, `bilinear`"
        ),
        "{stderr}"
    );
    let stderr = plan(&[
        "data.augment.rotation_degrees=-15",
        "data.augment.rotation_fill=256",
    ]);
    for expected in [
        "`data.augment.rotation_degrees`: must be between 0 and 180 (degrees)",
        "`data.augment.rotation_fill`: must be a pixel value from 0 to 255, got 256",
    ] {
        assert!(stderr.contains(expected), "{stderr}");
    }
}
