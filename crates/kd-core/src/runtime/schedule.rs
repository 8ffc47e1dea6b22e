//! Learning-rate schedules as a factor on each part's base rate: multistep (×γ at each
//! milestone epoch, PyTorch's `MultiStepLR`), cosine (per epoch, PyTorch's `CosineAnnealingLR`
//! down to `min_factor`), constant, each after an optional step-wise linear warm-up.

use crate::config::{ScheduleConfig, ScheduleKind};

/// The factor for batch `batch` (of `batches`) in epoch `epoch` (0-based) of `epochs`.
pub fn lr_factor(
    config: &ScheduleConfig,
    epochs: usize,
    epoch: usize,
    batch: usize,
    batches: usize,
) -> f64 {
    if config.warmup_epochs > 0 && epoch < config.warmup_epochs {
        let done = (epoch * batches + batch + 1) as f64;
        return done / (config.warmup_epochs * batches.max(1)) as f64;
    }
    match config.kind {
        ScheduleKind::Constant => 1.0,
        ScheduleKind::Multistep => {
            let passed = config.milestones.iter().filter(|&&m| m <= epoch).count();
            config.gamma.powi(passed as i32)
        }
        ScheduleKind::Cosine => {
            let span = epochs.saturating_sub(config.warmup_epochs).max(1) as f64;
            let t = (epoch - config.warmup_epochs) as f64;
            let m = config.min_factor;
            m + (1.0 - m) * 0.5 * (1.0 + (std::f64::consts::PI * t / span).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: ScheduleKind) -> ScheduleConfig {
        ScheduleConfig {
            kind,
            milestones: vec![2, 4],
            gamma: 0.1,
            warmup_epochs: 0,
            min_factor: 0.0,
        }
    }

    #[test]
    fn multistep_decays_at_each_milestone() {
        let c = config(ScheduleKind::Multistep);
        let f: Vec<f64> = (0..6).map(|e| lr_factor(&c, 6, e, 0, 10)).collect();
        assert_eq!(f[0], 1.0);
        assert_eq!(f[1], 1.0);
        assert!((f[2] - 0.1).abs() < 1e-12 && (f[3] - 0.1).abs() < 1e-12);
        assert!((f[4] - 0.01).abs() < 1e-12 && (f[5] - 0.01).abs() < 1e-12);
    }

    #[test]
    fn cosine_goes_from_one_to_min_over_the_run() {
        let mut c = config(ScheduleKind::Cosine);
        c.min_factor = 0.2;
        assert_eq!(lr_factor(&c, 4, 0, 0, 10), 1.0);
        // Epoch 2 of 4: cos(π/2) = 0 → 0.2 + 0.8·0.5 = 0.6.
        assert!((lr_factor(&c, 4, 2, 0, 10) - 0.6).abs() < 1e-12);
    }

    #[test]
    fn warmup_rises_linearly_per_step_then_hands_over() {
        let mut c = config(ScheduleKind::Constant);
        c.warmup_epochs = 2;
        assert!((lr_factor(&c, 5, 0, 0, 10) - 0.05).abs() < 1e-12);
        assert!((lr_factor(&c, 5, 1, 9, 10) - 1.0).abs() < 1e-12);
        assert_eq!(lr_factor(&c, 5, 2, 0, 10), 1.0);
    }
}
