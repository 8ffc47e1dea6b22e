//! Learning-rate schedules as a factor on each part's base rate: multistep (×γ at each
//! milestone epoch, PyTorch's `MultiStepLR`), cosine (per epoch, PyTorch's `CosineAnnealingLR`
//! down to `min_factor`), constant, after an optional step-wise linear warm-up. `restarts` cut
//! the run into segments (a two-stage method's stages, SGDR-style restarts): the shape starts
//! over in each, milestones count from its first epoch, and the trainer resets every optimiser's
//! state when one begins.

use crate::config::{ScheduleConfig, ScheduleKind};

/// The factor for batch `batch` (of `batches`) in epoch `epoch` (0-based) of `epochs`.
pub fn lr_factor(
    config: &ScheduleConfig,
    epochs: usize,
    epoch: usize,
    batch: usize,
    batches: usize,
) -> f64 {
    // The segment between restarts that holds `epoch`: the shape runs over it from its start.
    let start = config
        .restarts
        .iter()
        .copied()
        .filter(|&r| r <= epoch)
        .max()
        .unwrap_or(0);
    let end = config
        .restarts
        .iter()
        .copied()
        .filter(|&r| r > epoch)
        .min()
        .unwrap_or(epochs);
    let warmup = if start == 0 { config.warmup_epochs } else { 0 };
    let local = epoch - start;
    if warmup > 0 && local < warmup {
        let done = (local * batches + batch + 1) as f64;
        return done / (warmup * batches.max(1)) as f64;
    }
    match config.kind {
        ScheduleKind::Constant => 1.0,
        ScheduleKind::Multistep => {
            let passed = config.milestones.iter().filter(|&&m| m <= local).count();
            config.gamma.powi(passed as i32)
        }
        ScheduleKind::Cosine => {
            let span = (end - start).saturating_sub(warmup).max(1) as f64;
            let t = (local - warmup) as f64;
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
            restarts: Vec::new(),
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

    #[test]
    fn restarts_start_the_shape_over() {
        let mut c = config(ScheduleKind::Multistep);
        c.restarts = vec![5];
        let f: Vec<f64> = (0..10).map(|e| lr_factor(&c, 10, e, 0, 10)).collect();
        assert_eq!((f[1], f[5], f[6]), (1.0, 1.0, 1.0));
        assert!((f[4] - 0.01).abs() < 1e-12);
        assert!((f[7] - 0.1).abs() < 1e-12 && (f[9] - 0.01).abs() < 1e-12);
        let mut c = config(ScheduleKind::Cosine);
        c.restarts = vec![4];
        // Segment [4, 8): epoch 6 is halfway → 0.5.
        assert!((lr_factor(&c, 8, 6, 0, 10) - 0.5).abs() < 1e-12);
        assert_eq!(lr_factor(&c, 8, 4, 0, 10), 1.0);
    }
}
