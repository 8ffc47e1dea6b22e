//! The hybrid network: the student with some stages replaced by the teacher's, the swap draws
//! and the probability schedule. Pure functions, tested on real zoo networks.

use burn::module::Module;
use burn::tensor::Tensor;
use kd_core::zoo::layers::without_running_stat_updates;
use kd_core::zoo::{Adapter, Network, Staged};
use rand::RngExt;

use crate::config::SwapSchedule;

/// Adapters around the teacher's stages, `None` where the shapes already agree.
#[derive(Module, Debug)]
pub struct StageAdapters {
    /// Student map → teacher stage input, per stage.
    pub input: Vec<Option<Adapter>>,
    /// Teacher stage output → student map, per stage.
    pub output: Vec<Option<Adapter>>,
}

/// p(e) for epoch `epoch` (0-based).
pub fn swap_probability(schedule: SwapSchedule, p0: f64, decay_epochs: usize, epoch: usize) -> f64 {
    match schedule {
        SwapSchedule::Constant => p0,
        SwapSchedule::Linear => p0 * (1.0 - epoch as f64 / decay_epochs.max(1) as f64).max(0.0),
    }
}

/// The swap pattern as a number: bit i set where stage i + 1 is the teacher's (logged as the
/// `swap_mask` column, so losses can be grouped by pattern).
pub fn swap_mask(swaps: &[bool]) -> u32 {
    swaps
        .iter()
        .enumerate()
        .map(|(i, &s)| (s as u32) << i)
        .sum()
}

/// One independent Bernoulli(p) draw per stage.
pub fn draw_swaps(rng: &mut impl rand::Rng, stages: usize, p: f64) -> Vec<bool> {
    (0..stages)
        .map(|_| p > 0.0 && rng.random_bool(p.min(1.0)))
        .collect()
}

/// Logits of the hybrid: the student's stem, then stage by stage the student's or (where
/// `swaps[i]`) the teacher's, then the student's head.
///
/// A teacher stage never moves its running statistics: with a frozen `teacher` it normalises
/// with them; with a copy whose BatchNorm is in training mode (`swap_bn = "batch"`) it
/// normalises with the batch's statistics and leaves the stored ones alone.
///
/// # Shapes
/// - `x`: `[N, C, S, S]` → `[N, classes]`
pub fn hybrid_logits(
    student: &Network,
    teacher: &Network,
    adapters: Option<&StageAdapters>,
    swaps: &[bool],
    x: Tensor<4>,
) -> Tensor<2> {
    let mut h = student.stem(x);
    for (i, &swap) in swaps.iter().enumerate() {
        h = if swap {
            let into = adapters.and_then(|a| a.input[i].as_ref());
            let out_of = adapters.and_then(|a| a.output[i].as_ref());
            let input = match into {
                Some(adapter) => adapter.forward(h),
                None => h,
            };
            let out = without_running_stat_updates(|| teacher.stage(i, input));
            match out_of {
                Some(adapter) => adapter.forward(out),
                None => out,
            }
        } else {
            student.stage(i, h)
        };
    }
    student.classify(student.pool(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution};
    use kd_core::zoo::{self, ModelSpec};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn pair(device: &Device) -> (Network, Network) {
        let spec = ModelSpec {
            num_classes: 10,
            in_channels: 1,
        };
        let student = (zoo::find("resnet20").unwrap().arch)(spec).init(device);
        let teacher = (zoo::find("resnet56").unwrap().arch)(spec).init(device);
        (student, teacher)
    }

    #[test]
    fn with_no_swap_the_hybrid_is_the_student_exactly() {
        let device = Device::flex();
        let (student, teacher) = pair(&device);
        let x = Tensor::<4>::random([4, 1, 32, 32], Distribution::Default, &device);
        let hybrid = hybrid_logits(&student, &teacher, None, &[false, false, false], x.clone());
        let pure = student.forward(x);
        let (a, b) = (
            hybrid.into_data().try_to_vec::<f32>().unwrap(),
            pure.into_data().try_to_vec::<f32>().unwrap(),
        );
        assert!(
            a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
            "bit-identical logits"
        );
        // And p = 0 never draws a swap.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!((0..1000).all(|_| draw_swaps(&mut rng, 3, 0.0).iter().all(|s| !s)));
    }

    #[test]
    fn a_swapped_stage_changes_the_output_and_passes_gradients_through_the_frozen_teacher() {
        let device = Device::flex().autodiff();
        let (student, teacher) = pair(&device);
        let teacher = teacher.freeze();
        let x = Tensor::<4>::random([4, 1, 32, 32], Distribution::Default, &device);
        let swapped = hybrid_logits(&student, &teacher, None, &[false, true, false], x.clone());
        let pure = student.forward(x.clone());
        let diff: f32 = (swapped.clone() - pure).abs().max().into_scalar();
        assert!(diff > 0.0);
        let mut grads = swapped.sum().backward();
        let student_grads = GradientsParams::from_module(&mut grads, &student);
        let teacher_grads = GradientsParams::from_module(&mut grads, &teacher);
        assert_eq!(
            teacher_grads.len(),
            0,
            "the teacher's weights get no gradient"
        );
        // Every student tensor but those of stage 2 (replaced by the teacher's) gets a gradient:
        // stem and stage 1 through the teacher's stage, stage 3 and the head directly.
        let total = kd_core::zoo::param_inventory(&student)
            .iter()
            .filter(|p| p.trainable)
            .count();
        let stage2 = kd_core::zoo::param_inventory(&student)
            .iter()
            .filter(|p| p.trainable && p.name.starts_with("layer2"))
            .count();
        assert_eq!(student_grads.len(), total - stage2);
    }

    #[test]
    fn the_swap_rate_matches_p() {
        // 3 stages × 20,000 batches at p = 0.3: 18,000 expected swaps, standard deviation
        // sqrt(60,000 · 0.3 · 0.7) ≈ 112; the tolerance is 4 standard deviations (450).
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let swaps: usize = (0..20_000)
            .map(|_| draw_swaps(&mut rng, 3, 0.3).iter().filter(|s| **s).count())
            .sum();
        assert!((swaps as i64 - 18_000).abs() < 450, "{swaps}");
    }

    #[test]
    fn batch_mode_teacher_stages_normalise_with_batch_statistics_and_store_nothing() {
        let device = Device::flex().autodiff();
        let (student, teacher) = pair(&device);
        let frozen = teacher.clone().freeze();
        let batch_mode = teacher.clone().freeze().unfreeze().no_grad();
        let stored = running_means;
        let before = stored(&frozen);
        let x = Tensor::<4>::random([8, 1, 32, 32], Distribution::Normal(0.5, 2.0), &device);
        let a = hybrid_logits(&student, &frozen, None, &[true, true, true], x.clone());
        let b = hybrid_logits(&student, &batch_mode, None, &[true, true, true], x);
        let diff: f32 = (a - b).abs().max().into_scalar();
        assert!(diff > 1e-4, "batch statistics differ from the running ones");
        assert_eq!(
            stored(&frozen),
            before,
            "the teacher's statistics never move"
        );
        assert_eq!(stored(&batch_mode), before);
    }

    /// Every BatchNorm running mean of a network, flattened in visiting order.
    fn running_means(network: &Network) -> Vec<f32> {
        use burn::module::{ModuleVisitor, Param};
        struct Collect(Vec<f32>, Vec<String>);
        impl ModuleVisitor for Collect {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.1.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.1.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if self.1.last().is_some_and(|n| n == "running_mean") {
                    self.0
                        .extend(param.val().into_data().try_to_vec::<f32>().unwrap());
                }
            }
        }
        let mut c = Collect(Vec::new(), Vec::new());
        network.visit(&mut c);
        assert!(!c.0.is_empty(), "running means found");
        c.0
    }

    #[test]
    fn swap_masks_number_the_patterns() {
        assert_eq!(swap_mask(&[false, false, false]), 0);
        assert_eq!(swap_mask(&[true, false, true]), 5);
        assert_eq!(swap_mask(&[false, true, true, true]), 14);
    }

    #[test]
    fn linear_schedule_decays_to_zero_at_e_s() {
        assert_eq!(swap_probability(SwapSchedule::Linear, 0.5, 10, 0), 0.5);
        assert!((swap_probability(SwapSchedule::Linear, 0.5, 10, 4) - 0.3).abs() < 1e-12);
        assert_eq!(swap_probability(SwapSchedule::Linear, 0.5, 10, 10), 0.0);
        assert_eq!(swap_probability(SwapSchedule::Linear, 0.5, 10, 15), 0.0);
        assert_eq!(swap_probability(SwapSchedule::Constant, 0.3, 10, 15), 0.3);
    }
}
