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
//! value is meaningful (`run.seed`, `run.log_every`, `run.checkpoint_every`, `data.prefetch`)
//! have no entry.

use crate::config::{Issues, RunConfig};

/// What a number may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    /// Finite and above zero.
    Positive,
    /// Finite and at least zero.
    NonNegative,
    /// Finite, from 0 to 1 inclusive.
    UnitInterval,
}

impl Domain {
    /// Whether `value` lies in the domain (never for NaN or an infinity).
    fn contains(self, value: f64) -> bool {
        value.is_finite()
            && match self {
                Domain::Positive => value > 0.0,
                Domain::NonNegative => value >= 0.0,
                Domain::UnitInterval => (0.0..=1.0).contains(&value),
            }
    }

    /// What the user is told (the same words as `MethodArgs`' checks).
    fn requirement(self) -> &'static str {
        match self {
            Domain::Positive => "must be a positive number",
            Domain::NonNegative => "must be a non-negative number",
            Domain::UnitInterval => "must be between 0 and 1",
        }
    }
}

/// The message for a method instance's `weight` outside its domain (finite, at least zero).
pub(super) fn method_weight(weight: Option<f64>) -> Result<f64, &'static str> {
    match weight {
        Some(w) if Domain::NonNegative.contains(w) => Ok(w),
        _ => Err(Domain::NonNegative.requirement()),
    }
}

/// Checks every numeric key of the run against its domain.
pub(super) fn check_domains(config: &RunConfig, issues: &mut Issues<'_>) {
    let c = config;
    let mut floats: Vec<(String, f64, Domain)> = vec![
        ("optim.lr".into(), c.optim.lr, Domain::Positive),
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
    ];
    for (role, network) in &c.networks {
        if let Some(lr) = network.lr {
            floats.push((format!("networks.{role}.lr"), lr, Domain::NonNegative));
        }
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

/// `data.mean` and `data.std`: every element finite, every std above zero.
fn check_normalisation(c: &RunConfig, issues: &mut Issues<'_>) {
    for (key, values) in [("data.mean", &c.data.mean), ("data.std", &c.data.std)] {
        for (i, &v) in values.iter().flatten().enumerate() {
            if !v.is_finite() {
                issues.push(
                    &format!("{key}[{i}]"),
                    format!("{v} is not a finite number"),
                );
            }
        }
    }
    if c.data.std.iter().flatten().any(|&s| s <= 0.0) {
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
        for domain in [Domain::Positive, Domain::NonNegative, Domain::UnitInterval] {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
                assert!(!domain.contains(bad), "{domain:?} accepts {bad}");
            }
            assert!(domain.contains(0.5), "{domain:?}");
        }
        assert!(!Domain::Positive.contains(0.0));
        assert!(Domain::NonNegative.contains(0.0));
        assert!(Domain::UnitInterval.contains(1.0) && !Domain::UnitInterval.contains(1.5));
    }

    #[test]
    fn a_method_weight_is_finite_and_not_negative() {
        assert_eq!(method_weight(Some(0.0)), Ok(0.0));
        assert_eq!(method_weight(Some(2.5)), Ok(2.5));
        for bad in [Some(-0.5), Some(f64::NAN), Some(f64::INFINITY), None] {
            assert_eq!(method_weight(bad), Err("must be a non-negative number"));
        }
    }
}
