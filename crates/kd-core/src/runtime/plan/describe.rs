//! How a [`RunPlan`] presents itself: the evaluated outputs, the logged terms, the metrics
//! columns, the remarks, and the human-readable account `kd plan` prints.

use super::RunPlan;
use crate::config::{ScheduleConfig, ScheduleKind, display_path};
use crate::data::Geometry;
use crate::method::{BnMode, MAIN_PHASE, PlanView};

impl RunPlan {
    /// The view methods check against.
    pub fn view(&self) -> PlanView<'_> {
        PlanView {
            networks: &self.networks,
            input_size: self.data.input_size,
            num_classes: self.data.train.num_classes,
            in_channels: self.data.train.channels,
            config: &self.config,
        }
    }

    /// Names of every evaluated output: roles, then method outputs as `<instance>.<output>`.
    pub fn eval_outputs(&self) -> Vec<String> {
        let mut names: Vec<String> = self.roles.iter().map(|r| r.network.role.clone()).collect();
        for m in &self.methods {
            names.extend(
                m.needs
                    .eval_outputs
                    .iter()
                    .map(|o| format!("{}.{o}", m.instance)),
            );
        }
        names
    }

    /// Names of every logged loss term: `ce/<role>` for each role trained in the main phase,
    /// then `<instance>/<term>`.
    pub fn term_columns(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .roles
            .iter()
            .filter(|r| r.trained_in.as_deref() == Some(MAIN_PHASE) && r.ce_weight != 0.0)
            .map(|r| format!("ce/{}", r.network.role))
            .collect();
        for m in &self.methods {
            names.extend(
                m.needs
                    .terms
                    .iter()
                    .map(|t| format!("{}/{}", m.instance, t.name)),
            );
        }
        names
    }

    /// The metrics columns (after `kind`).
    pub fn metric_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = ["epoch", "batch", "step", "lr_factor", "loss"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        columns.extend(self.term_columns());
        for output in self.eval_outputs() {
            columns.push(format!("{output}/top1"));
            columns.push(format!("{output}/top5"));
        }
        columns.extend(
            crate::runtime::metrics::TIMING_COLUMNS
                .iter()
                .map(|s| s.to_string()),
        );
        columns
    }

    /// A human-readable account of the plan.
    pub fn describe(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!(
            "run `{}` → {}  (seed {}, {} epochs, backend {:?})",
            c.run.name,
            display_path(&self.run_dir),
            c.run.seed,
            c.run.epochs,
            c.run.backend
        ));
        let d = &self.data;
        let limit = |per_class: Option<usize>, kept: usize, g: &Geometry| match per_class {
            Some(n) => format!("{kept} (first {n} per class of {})", g.count),
            None => kept.to_string(),
        };
        line(format!(
            "data  {} at {}: train {} · test {} · {}x{}x{} → {}x{}x{} · {} classes",
            d.source.format,
            display_path(&d.source.root),
            limit(c.data.train_per_class, d.train_images(), &d.train),
            limit(c.data.test_per_class, d.test_images(), &d.test),
            d.train.channels,
            d.train.height,
            d.train.width,
            d.train.channels,
            d.input_size,
            d.input_size,
            d.train.num_classes
        ));
        line(format!(
            "      batch {} (eval {}), crop padding {} ({:?}), {}, flip {}, mean {:?}, std {:?} ({})",
            c.data.batch_size,
            c.data.eval_batch_size,
            c.data.augment.crop_padding,
            c.data.augment.pad_mode,
            rotation_words(&c.data.augment_spec().rotation),
            c.data.flip(),
            d.mean,
            d.std,
            d.normalisation
        ));
        line("networks".into());
        for l in self.network_lines() {
            line(l);
        }
        line(format!(
            "optimiser  SGD lr {} momentum {} nesterov {} weight decay {}; schedule {}",
            c.optim.lr,
            c.optim.momentum,
            c.optim.nesterov,
            c.optim.weight_decay,
            schedule_words(&c.schedule)
        ));
        if !c.optim.lr_for_arch.is_empty() {
            let rates: Vec<String> = c
                .optim
                .lr_for_arch
                .iter()
                .map(|(arch, lr)| format!("{arch} {lr}"))
                .collect();
            line(format!(
                "           lr by architecture: {}",
                rates.join(", ")
            ));
        }
        for l in self.phase_lines() {
            line(l);
        }
        for m in &self.methods {
            line(format!(
                "method `{}`: kind {} (crate {}), weight {}",
                m.instance, m.kind, m.crate_name, m.weight
            ));
        }
        line(format!(
            "evaluated each epoch: {}",
            self.eval_outputs().join(", ")
        ));
        for remark in self.remarks() {
            line(format!("remark: {remark}"));
        }
        for w in &self.warnings {
            line(format!("warning: {w}"));
        }
        out
    }

    /// One line per role (architecture, mode, start, users), one for its taps.
    fn network_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for r in &self.roles {
            let mode = match (&r.trained_in, r.bn) {
                (Some(phase), _) => {
                    format!("trained in `{phase}`, lr {} ({})", r.lr, r.lr_source)
                }
                (None, BnMode::Eval) => "frozen".to_string(),
                (None, BnMode::Train) => "frozen weights, BatchNorm in training mode".to_string(),
            };
            let start = match &r.checkpoint {
                Some((path, inner)) => format!("from {}#{inner}", display_path(path)),
                None => "from scratch".to_string(),
            };
            lines.push(format!(
                "  {:<10} {:<12} {mode}; {start}; used by {}",
                r.network.role,
                r.network.arch_name,
                r.used_by.join(", ")
            ));
            let taps: Vec<String> = r
                .network
                .taps
                .iter()
                .map(|t| {
                    format!(
                        "{} {}",
                        t.name,
                        t.shape
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join("x")
                    )
                })
                .collect();
            lines.push(format!("             taps: {}", taps.join(", ")));
        }
        lines
    }

    /// One line per phase: what it trains and its loss.
    fn phase_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for phase in &self.phases {
            let mut terms: Vec<String> = Vec::new();
            if phase.name == MAIN_PHASE {
                for r in self
                    .roles
                    .iter()
                    .filter(|r| r.trained_in.as_deref() == Some(MAIN_PHASE))
                {
                    terms.push(format!("{} × CE({})", r.ce_weight, r.network.role));
                }
            }
            for m in &self.methods {
                for t in m.needs.terms.iter().filter(|t| t.phase == phase.name) {
                    terms.push(format!(
                        "{} × {}/{} [{}]",
                        m.weight, m.instance, t.name, t.formula
                    ));
                }
            }
            let trains: Vec<&str> = self
                .roles
                .iter()
                .filter(|r| r.trained_in.as_deref() == Some(phase.name.as_str()))
                .map(|r| r.network.role.as_str())
                .collect();
            lines.push(format!(
                "phase `{}`{}{}: trains {} (+ method modules); loss = {}",
                phase.name,
                if phase.own_batch { ", own batch" } else { "" },
                if phase.from_epoch > 0 {
                    format!(", from epoch {}", phase.from_epoch)
                } else {
                    String::new()
                },
                if trains.is_empty() {
                    "no role".to_string()
                } else {
                    trains.join(", ")
                },
                if terms.is_empty() {
                    "0".to_string()
                } else {
                    terms.join(" + ")
                }
            ));
        }
        lines
    }

    /// What the methods of the stack want said about the run (non-canonical options, say).
    pub fn remarks(&self) -> Vec<String> {
        self.methods
            .iter()
            .flat_map(|m| {
                m.needs
                    .remarks
                    .iter()
                    .map(move |r| format!("{}: {r}", m.instance))
            })
            .collect()
    }
}

/// The plan's words for the learning-rate schedule, every key that applies to its kind: the
/// shape (`Multistep milestones [150, 180, 210] γ 0.1`, `Cosine to 0 × the base rate`,
/// `Constant`), the warm-up in epochs, and the restarts (`restarts at [200] (the shape starts
/// over, optimiser state reset)`, or `no restarts`), as `runtime/schedule.rs` applies them.
fn schedule_words(s: &ScheduleConfig) -> String {
    let shape = match s.kind {
        ScheduleKind::Multistep => format!("Multistep milestones {:?} γ {}", s.milestones, s.gamma),
        ScheduleKind::Cosine => format!("Cosine to {} × the base rate", s.min_factor),
        ScheduleKind::Constant => "Constant".to_string(),
    };
    let restarts = if s.restarts.is_empty() {
        "no restarts".to_string()
    } else {
        format!(
            "restarts at {:?} (the shape starts over, optimiser state reset)",
            s.restarts
        )
    };
    format!("{shape} warm-up {}; {restarts}", s.warmup_epochs)
}

/// The plan's words for the random rotation: `rotation ±15° (nearest, fill 0)`, or
/// `no rotation`.
fn rotation_words(r: &crate::data::Rotation) -> String {
    if r.is_active() {
        format!(
            "rotation ±{}° ({:?}, fill {})",
            r.degrees, r.interpolation, r.fill
        )
    } else {
        "no rotation".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_shows_every_key_of_its_kind_and_the_restarts() {
        let mut s = ScheduleConfig {
            milestones: vec![60, 120, 160],
            restarts: vec![200],
            ..ScheduleConfig::default()
        };
        assert_eq!(
            schedule_words(&s),
            "Multistep milestones [60, 120, 160] γ 0.1 warm-up 0; restarts at [200] (the shape \
             starts over, optimiser state reset)"
        );
        s.restarts.clear();
        s.warmup_epochs = 5;
        assert_eq!(
            schedule_words(&s),
            "Multistep milestones [60, 120, 160] γ 0.1 warm-up 5; no restarts"
        );
        // Milestones and γ do not apply to a cosine schedule; its floor does.
        s.kind = ScheduleKind::Cosine;
        s.min_factor = 0.01;
        assert_eq!(
            schedule_words(&s),
            "Cosine to 0.01 × the base rate warm-up 5; no restarts"
        );
        s.kind = ScheduleKind::Constant;
        assert_eq!(schedule_words(&s), "Constant warm-up 5; no restarts");
    }
}
