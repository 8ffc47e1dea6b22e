//! The domain of every numeric configuration key, in one table, checked when the run is
//! planned: a learning rate of −1, a NaN weight or unsorted milestones are reported at their
//! keys with every other plan problem, instead of training on garbage or stopping epochs later
//! on a NaN loss that names no key.
//!
//! Floats must be finite (TOML accepts `nan` and `inf`, and NaN fails every comparison, so each
//! check is written to fail on it). The domains that depend on the data are checked where the
//! data is known (`data.rs`: `data.input_size` against the image side, the lengths of
//! `data.mean`/`data.std` against the channels, `data.train_per_class`/`data.test_per_class`
//! against the images they keep); a method's own keys are checked by its plugin
//! (`MethodArgs::positive` and friends), its `weight` here ([`method_weight`]). Keys whose every
//! value is meaningful (`run.seed`, `run.log_every`, `run.checkpoint_every`) have no entry.
//!
//! Training computes in f32, so a float must also survive the conversion: a magnitude above
//! f32's largest value becomes an infinity, and a positive value below f32's smallest positive
//! value becomes 0 (a temperature of 1e-300 divides by zero at the first step).
//!
//! Sizes that allocate have upper bounds ([`MAX_BATCH`], [`MAX_INPUT_SIZE`], [`MAX_PREFETCH`]),
//! so that an absurd value is a plan error at its key rather than an allocation failure that
//! aborts the process once training starts. The bounds are far above any zoo configuration (the
//! CIFAR and ImageNet models use 32 to 224 pixel inputs and batches of 64 to 512).

use crate::config::{Issues, RunConfig, f32_problem};

/// The largest `data.batch_size` and `data.eval_batch_size`.
pub const MAX_BATCH: usize = 4096;
/// The largest `data.input_size`, in pixels (a side: inputs are square).
pub const MAX_INPUT_SIZE: usize = 1024;
/// The largest `data.prefetch`, in batches prepared ahead of the training step.
pub const MAX_PREFETCH: usize = 64;

/// What a number may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    /// Finite and above zero.
    Positive,
    /// Finite and at least zero.
    NonNegative,
    /// Finite, from 0 to 1 inclusive.
    UnitInterval,
    /// Finite, from 0 to 180 inclusive (an angle in degrees, as a half turn either way).
    HalfTurn,
}

impl Domain {
    /// Whether `value` lies in the domain (never for NaN or an infinity).
    fn contains(self, value: f64) -> bool {
        value.is_finite()
            && match self {
                Domain::Positive => value > 0.0,
                Domain::NonNegative => value >= 0.0,
                Domain::UnitInterval => (0.0..=1.0).contains(&value),
                Domain::HalfTurn => (0.0..=180.0).contains(&value),
            }
    }

    /// What the user is told (the same words as `MethodArgs`' checks).
    fn requirement(self) -> &'static str {
        match self {
            Domain::Positive => "must be a positive number",
            Domain::NonNegative => "must be a non-negative number",
            Domain::UnitInterval => "must be between 0 and 1",
            Domain::HalfTurn => "must be between 0 and 180 (degrees)",
        }
    }
}

/// The domain of every learning-rate key of the run ([`learning_rates`]): positive and finite.
/// A rate of 0 would leave its role's weights where they start (weight decay scales with the
/// rate too) while the run reports success, so it is refused like a negative one.
const LEARNING_RATE: Domain = Domain::Positive;

/// Every learning-rate key the run sets, with its value: `optim.lr`, each
/// `optim.lr_for_arch.<arch>`, each `networks.<role>.lr`.
fn learning_rates(c: &RunConfig) -> Vec<(String, f64)> {
    let mut rates = vec![("optim.lr".to_string(), c.optim.lr)];
    for (arch, lr) in &c.optim.lr_for_arch {
        rates.push((format!("optim.lr_for_arch.{arch}"), *lr));
    }
    for (role, network) in &c.networks {
        if let Some(lr) = network.lr {
            rates.push((format!("networks.{role}.lr"), lr));
        }
    }
    rates
}

/// The message for a method instance's `weight` outside its domain (finite, at least zero,
/// and finite in f32).
pub(super) fn method_weight(weight: Option<f64>) -> Result<f64, String> {
    match weight {
        Some(w) if Domain::NonNegative.contains(w) => match f32_problem(w, false) {
            None => Ok(w),
            Some(problem) => Err(problem),
        },
        _ => Err(Domain::NonNegative.requirement().to_string()),
    }
}

/// Checks every numeric key of the run against its domain.
pub(super) fn check_domains(config: &RunConfig, issues: &mut Issues<'_>) {
    let c = config;
    let mut floats: Vec<(String, f64, Domain)> = learning_rates(c)
        .into_iter()
        .map(|(key, lr)| (key, lr, LEARNING_RATE))
        .collect();
    floats.extend([
        (
            "optim.momentum".into(),
            c.optim.momentum,
            Domain::UnitInterval,
        ),
        (
            "optim.weight_decay".into(),
            c.optim.weight_decay,
            Domain::NonNegative,
        ),
        ("schedule.gamma".into(), c.schedule.gamma, Domain::Positive),
        (
            "schedule.min_factor".into(),
            c.schedule.min_factor,
            Domain::UnitInterval,
        ),
        (
            "loss.ce_weight".into(),
            c.loss.ce_weight,
            Domain::NonNegative,
        ),
        (
            "data.augment.rotation_degrees".into(),
            c.data.augment.rotation_degrees,
            Domain::HalfTurn,
        ),
    ]);
    for (role, network) in &c.networks {
        if let Some(weight) = network.ce_weight {
            floats.push((
                format!("networks.{role}.ce_weight"),
                weight,
                Domain::NonNegative,
            ));
        }
    }
    for (key, value, domain) in floats {
        if !domain.contains(value) {
            issues.push(&key, domain.requirement());
        } else if let Some(problem) = f32_problem(value, domain == Domain::Positive) {
            issues.push(&key, problem);
        }
    }

    let at_least_one = [
        ("run.epochs", c.run.epochs),
        ("data.batch_size", c.data.batch_size),
        ("data.eval_batch_size", c.data.eval_batch_size),
    ];
    for (key, value) in at_least_one {
        if value == 0 {
            issues.push(key, "must be at least 1");
        }
    }
    let at_most = [
        ("data.batch_size", c.data.batch_size, MAX_BATCH),
        ("data.eval_batch_size", c.data.eval_batch_size, MAX_BATCH),
        ("data.input_size", c.data.input_size, MAX_INPUT_SIZE),
        ("data.prefetch", c.data.prefetch, MAX_PREFETCH),
    ];
    for (key, value, max) in at_most {
        if value > max {
            issues.push(key, format!("must be at most {max}, got {value}"));
        }
    }

    let fill = c.data.augment.rotation_fill;
    if !(0..=255).contains(&fill) {
        issues.push(
            "data.augment.rotation_fill",
            format!("must be a pixel value from 0 to 255, got {fill}"),
        );
    }

    let (padding, side) = (c.data.augment.crop_padding, c.data.input_size);
    if side > 0 && padding >= side {
        issues.push(
            "data.augment.crop_padding",
            format!("must be smaller than data.input_size ({side}): a crop could miss the image"),
        );
    }
    check_normalisation(c, issues);
    check_schedule_epochs(c, issues);
    if let Err(e) = crate::backend::check(c.run.backend) {
        issues.push("run.backend", e.to_string());
    }
}

/// `data.mean` and `data.std`: every element finite, every std above zero. They are read as
/// f32, so a value beyond f32's range arrives here as an infinity and a positive one below its
/// smallest positive value as 0: the messages say so rather than quote the converted value.
fn check_normalisation(c: &RunConfig, issues: &mut Issues<'_>) {
    for (key, values) in [("data.mean", &c.data.mean), ("data.std", &c.data.std)] {
        for (i, &v) in values.iter().flatten().enumerate() {
            if v.is_nan() {
                issues.push(&format!("{key}[{i}]"), "NaN is not a finite number");
            } else if v.is_infinite() {
                issues.push(
                    &format!("{key}[{i}]"),
                    format!(
                        "{v} is not a finite number (or its magnitude exceeds f32's largest \
                         value, {:e})",
                        f32::MAX
                    ),
                );
            }
        }
    }
    for (i, &s) in c.data.std.iter().flatten().enumerate() {
        if s == 0.0 {
            issues.push(
                &format!("data.std[{i}]"),
                format!(
                    "is 0 in f32 (zero, or below f32's smallest positive value {:e}): images would be divided by zero",
                    f32::from_bits(1)
                ),
            );
        }
    }
    if c.data.std.iter().flatten().any(|&s| s < 0.0) {
        // The same words as the data plan's check, so the problem is listed once.
        issues.push("data.std", "every value must be positive");
    }
}

/// The keys counted in epochs: milestones, restarts and the warm-up.
fn check_schedule_epochs(c: &RunConfig, issues: &mut Issues<'_>) {
    let epochs = c.run.epochs;
    let increasing = |list: &[usize]| list.windows(2).all(|w| w[0] < w[1]);
    let milestones = &c.schedule.milestones;
    if milestones.contains(&0) || !increasing(milestones) {
        issues.push(
            "schedule.milestones",
            "must be increasing epochs after 0, e.g. [150, 180, 210]",
        );
    }
    let restarts = &c.schedule.restarts;
    if restarts.iter().any(|&r| r == 0 || r >= epochs) || !increasing(restarts) {
        issues.push(
            "schedule.restarts",
            format!("must be increasing epochs strictly between 0 and run.epochs ({epochs})"),
        );
    }
    // The warm-up runs in the first segment only; it must leave that segment some epochs.
    let first_segment = restarts.first().copied().unwrap_or(epochs).min(epochs);
    let warmup = c.schedule.warmup_epochs;
    if epochs > 0 && warmup > 0 && warmup >= first_segment {
        let segment = if first_segment < epochs {
            format!("the first restart ({first_segment})")
        } else {
            format!("run.epochs ({epochs})")
        };
        issues.push(
            "schedule.warmup_epochs",
            format!("must be fewer than {segment}: the rate would never reach its base value"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_reject_nan_infinities_and_out_of_range_values() {
        let all = [
            Domain::Positive,
            Domain::NonNegative,
            Domain::UnitInterval,
            Domain::HalfTurn,
        ];
        for domain in all {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
                assert!(!domain.contains(bad), "{domain:?} accepts {bad}");
            }
            assert!(domain.contains(0.5), "{domain:?}");
        }
        assert!(!Domain::Positive.contains(0.0));
        assert!(Domain::NonNegative.contains(0.0));
        assert!(Domain::UnitInterval.contains(1.0) && !Domain::UnitInterval.contains(1.5));
        assert!(Domain::HalfTurn.contains(0.0) && Domain::HalfTurn.contains(180.0));
        assert!(!Domain::HalfTurn.contains(180.5));
    }

    #[test]
    fn every_learning_rate_key_has_one_rule_positive_and_finite() {
        let mut c = RunConfig::default();
        c.optim.lr = 0.05;
        c.optim.lr_for_arch.insert("MobileNetV2".into(), 0.01);
        c.networks.insert(
            "student".into(),
            crate::config::NetworkConfig::new("resnet8"),
        );
        c.networks.get_mut("student").unwrap().lr = Some(0.0);
        let keys: Vec<String> = learning_rates(&c).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "optim.lr",
                "optim.lr_for_arch.MobileNetV2",
                "networks.student.lr"
            ]
        );
        for bad in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            assert!(!LEARNING_RATE.contains(bad), "{bad}");
        }
        assert!(LEARNING_RATE.contains(1e-4));
    }

    #[test]
    fn a_method_weight_is_finite_and_not_negative() {
        assert_eq!(method_weight(Some(0.0)), Ok(0.0));
        assert_eq!(method_weight(Some(2.5)), Ok(2.5));
        for bad in [Some(-0.5), Some(f64::NAN), Some(f64::INFINITY), None] {
            assert_eq!(
                method_weight(bad),
                Err("must be a non-negative number".to_string())
            );
        }
        let huge = method_weight(Some(1e300)).unwrap_err();
        assert!(
            huge.starts_with("1e300 exceeds f32's largest value"),
            "{huge}"
        );
    }
}
