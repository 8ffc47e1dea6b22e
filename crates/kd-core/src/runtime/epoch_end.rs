//! The end of an epoch: every role that can change (and every method output) evaluated on the
//! test split, the epoch's training means and accuracies recorded in the state and the metrics
//! files, `last.kdc` written, and `best.kdc` when the student's top-1 improved.

use std::collections::BTreeMap;

use super::error::TrainError;
use super::evaluate::evaluate;
use super::metrics::Row;
use super::observer::{EpochReport, Observer};
use super::schedule::lr_factor;
use super::trainer::Run;
use crate::checkpoint::{Accuracy, Best, EpochRecord};

impl Run {
    /// Evaluates, records and checkpoints the epoch just trained, then moves to the next.
    pub(super) fn end_epoch(&mut self, observer: &mut dyn Observer) -> Result<(), TrainError> {
        let c = self.plan.config.clone();
        let epoch = self.state.epoch;
        let tallies = evaluate(
            &self.roles,
            &self.changing,
            &self.plan.methods,
            &self.test_set,
            &self.transform,
            c.data.eval_batch_size,
            &self.plain,
        )?;
        let mut eval: BTreeMap<String, Accuracy> = tallies
            .into_iter()
            .map(|(k, t)| (k, t.accuracy()))
            .collect();
        eval.extend(self.fixed_eval.clone());
        let state = &mut self.state;
        let n = state.epoch_images.max(1) as f64;
        let train_means: BTreeMap<String, f64> = state
            .epoch_sums
            .iter()
            .map(|(k, v)| (k.clone(), v / n))
            .collect();
        let factor = lr_factor(
            &c.schedule,
            c.run.epochs,
            epoch,
            self.batches.saturating_sub(1),
            self.batches,
        );
        let student = eval.get("student").map(|a| a.top1).unwrap_or(0.0);
        let improved = state.best.is_none_or(|b| student > b.top1);
        if improved {
            state.best = Some(Best {
                epoch,
                top1: student,
            });
        }
        state.history.push(EpochRecord {
            epoch,
            lr_factor: factor,
            train: train_means.clone(),
            eval: eval.clone(),
        });
        state.epoch += 1;
        state.next_batch = 0;
        state.epoch_batches = 0;
        state.epoch_images = 0;
        state.epoch_sums.clear();
        let wall_seconds = self.wall_seconds();
        self.state.wall_seconds = wall_seconds;

        let mut values: BTreeMap<String, f64> = train_means.clone();
        values.insert("epoch".into(), (epoch + 1) as f64);
        values.insert("step".into(), self.state.global_step as f64);
        values.insert("lr_factor".into(), factor);
        for (name, acc) in &eval {
            values.insert(format!("{name}/top1"), acc.top1);
            values.insert(format!("{name}/top5"), acc.top5);
        }
        values.insert("wall_seconds".into(), wall_seconds);
        self.metrics
            .append(&Row {
                kind: "epoch",
                values,
            })
            .map_err(TrainError::io(&self.files.dir))?;
        self.state.finished = self.state.epoch >= c.run.epochs;
        // `best.kdc` first: if writing it fails (a full disk), `last.kdc` still holds the state
        // before this epoch, so a resume redoes the epoch and writes both, and no state ever
        // names a best epoch whose checkpoint is missing.
        if improved {
            self.save(&self.files.best())?;
        }
        self.save(&self.files.last())?;
        tracing::info!(epoch, student_top1 = student, "epoch finished");
        observer.epoch(&EpochReport {
            epoch,
            epochs: c.run.epochs,
            train: train_means,
            eval,
            best: self.state.best,
        });
        Ok(())
    }
}
