//! Evaluation: top-1, top-5 and per-class accuracy of every role and every method output on the
//! test split, in evaluation mode on the inner (non-autodiff) device.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::error::TrainError;
use super::plan::MethodInstance;
use crate::checkpoint::Accuracy;
use crate::data::{Augment, BatchStream, ImageSet, StreamSpec, Transform};
use crate::method::EvalContext;
use crate::method::Roles;
use crate::zoo::Network;

/// Counts of correct predictions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Correct at top-1.
    pub correct1: usize,
    /// Correct at top-5.
    pub correct5: usize,
    /// Images seen.
    pub total: usize,
    /// Per class: (correct at top-1, images).
    pub per_class: Vec<(usize, usize)>,
}

impl Tally {
    /// Adds a batch of logits (`labels.len()` rows of `classes` values).
    ///
    /// A row counts as correct at top-k when its true class scores strictly higher than all but
    /// at most k − 1 other classes. Ties are wrong answers: a class that merely equals the true
    /// one outranks it, so constant logits (a collapsed network) score 0, never 100%. A row with
    /// any non-finite logit (NaN, ±∞) is wrong at every k. Rows still count towards the total
    /// and towards their class.
    pub fn add(&mut self, logits: &[f32], classes: usize, labels: &[i64]) {
        if self.per_class.len() < classes {
            self.per_class.resize(classes, (0, 0));
        }
        for (row, &label) in logits.chunks_exact(classes).zip(labels) {
            let label = label as usize;
            let rank = true_class_rank(row, label);
            self.correct1 += (rank == Some(0)) as usize;
            self.correct5 += rank.is_some_and(|r| r < 5) as usize;
            self.total += 1;
            self.per_class[label].0 += (rank == Some(0)) as usize;
            self.per_class[label].1 += 1;
        }
    }

    /// Top-1 and top-5 in percent.
    pub fn accuracy(&self) -> Accuracy {
        let pct = |n: usize| {
            if self.total == 0 {
                0.0
            } else {
                100.0 * n as f64 / self.total as f64
            }
        };
        Accuracy {
            top1: pct(self.correct1),
            top5: pct(self.correct5),
        }
    }

    /// Per-class top-1 in percent; `None` for a class without test images (it has no
    /// accuracy, and printing one as `NaN%` or 0% would misreport it).
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        self.per_class
            .iter()
            .map(|&(c, n)| (n > 0).then(|| 100.0 * c as f64 / n as f64))
            .collect()
    }
}

/// How many other classes score at least as high as the true class `label` (0 = a strict,
/// unique maximum); `None` when the row holds a non-finite value, which no prediction survives.
fn true_class_rank(row: &[f32], label: usize) -> Option<usize> {
    if row.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let target = row[label];
    Some(
        row.iter()
            .enumerate()
            .filter(|&(j, &v)| j != label && v >= target)
            .count(),
    )
}

/// Evaluates the given roles and, if `methods` is non-empty, their extra outputs.
pub fn evaluate(
    roles: &Roles,
    which: &[String],
    methods: &[MethodInstance],
    test: &Arc<ImageSet>,
    transform: &Transform,
    batch_size: usize,
    device: &Device,
) -> Result<BTreeMap<String, Tally>, TrainError> {
    let networks: HashMap<String, Network> = roles
        .iter()
        .filter(|r| which.contains(&r.name) || !methods.is_empty())
        .map(|r| (r.name.clone(), r.net.module().valid()))
        .collect();
    let spec = StreamSpec {
        batch_size,
        shuffle: false,
        drop_last: false,
        augment: Augment::NONE,
        seed: 0,
        epoch: 0,
        start_batch: 0,
        prefetch: 2,
    };
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for batch in BatchStream::start(test.clone(), transform.clone(), spec) {
        let images = Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), device);
        let mut ctx = EvalContext::new(images, &networks);
        let mut outputs: Vec<(String, Tensor<2>)> = Vec::new();
        for name in which {
            let logits = ctx
                .features(name)
                .map_err(|source| TrainError::Method {
                    instance: name.clone(),
                    source,
                })?
                .logits
                .clone();
            outputs.push((name.clone(), logits));
        }
        for m in methods {
            let extra = m
                .method
                .evaluate(&mut ctx)
                .map_err(|source| TrainError::Method {
                    instance: m.instance.clone(),
                    source,
                })?;
            outputs.extend(
                extra
                    .into_iter()
                    .map(|(name, logits)| (format!("{}.{name}", m.instance), logits)),
            );
        }
        for (name, logits) in outputs {
            let [_, classes] = logits.dims();
            let values = logits
                .into_data()
                .try_to_vec::<f32>()
                .expect("logits are f32");
            tallies
                .entry(name)
                .or_default()
                .add(&values, classes, &batch.labels);
        }
    }
    Ok(tallies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_top1_top5_and_per_class() {
        let mut t = Tally::default();
        // 6 classes; row 0: label 0 is the max → top-1; row 1: label 5 ranks 6th → neither.
        let logits = [9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0];
        t.add(&logits, 6, &[0, 5]);
        // Row 2: label 1 ranks 5th (four higher) → top-5 only.
        t.add(&[5.0, 1.0, 4.0, 3.0, 2.0, 0.5], 6, &[1]);
        assert_eq!((t.correct1, t.correct5, t.total), (1, 2, 3));
        let a = t.accuracy();
        assert!((a.top1 - 100.0 / 3.0).abs() < 1e-9 && (a.top5 - 200.0 / 3.0).abs() < 1e-9);
        let per = t.per_class_accuracy();
        assert_eq!(
            (per[0], per[1], per[5]),
            (Some(100.0), Some(0.0), Some(0.0))
        );
        assert_eq!(per[2], None, "a class without images has no accuracy");
    }

    #[test]
    fn constant_logits_score_zero_not_one_hundred() {
        // A collapsed network: every class scores the same on every image.
        let mut t = Tally::default();
        let labels: Vec<i64> = (0..10).collect();
        t.add(&[0.0; 100], 10, &labels);
        let a = t.accuracy();
        assert_eq!((a.top1, a.top5), (0.0, 0.0));
        assert!(t.per_class_accuracy().iter().all(|p| *p == Some(0.0)));
    }

    #[test]
    fn a_tie_with_the_true_class_is_wrong_at_top1() {
        let mut t = Tally::default();
        // Label 1 ties with class 0 for the maximum: wrong at top-1, right at top-5 (one class
        // at or above it). Label 2 is the strict maximum of its row: right.
        t.add(&[3.0, 3.0, 1.0, 3.0, 1.0, 4.0], 3, &[1, 2]);
        assert_eq!((t.correct1, t.correct5, t.total), (1, 2, 2));
        // Five other classes tie with the true one: outside the top five.
        let mut t = Tally::default();
        t.add(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0], 7, &[0]);
        assert_eq!((t.correct1, t.correct5), (0, 0));
    }

    #[test]
    fn non_finite_logits_are_wrong_answers() {
        let mut t = Tally::default();
        // NaN elsewhere in the row, NaN on the true class, +∞ on the true class, −∞ elsewhere.
        let logits = [
            5.0,
            f32::NAN,
            0.0, //
            f32::NAN,
            1.0,
            0.0, //
            f32::INFINITY,
            1.0,
            0.0, //
            5.0,
            f32::NEG_INFINITY,
            0.0,
        ];
        t.add(&logits, 3, &[0, 0, 0, 0]);
        assert_eq!((t.correct1, t.correct5, t.total), (0, 0, 4));
        assert_eq!(t.accuracy().top1, 0.0);
    }
}
