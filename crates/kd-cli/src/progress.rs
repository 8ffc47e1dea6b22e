//! The training display: an indicatif bar per epoch with ETA and the live loss terms when
//! stdout is a terminal, plain lines otherwise.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kd_core::runtime::{EpochReport, Observer, StartInfo, StepReport};

/// Shows progress on stdout.
pub struct Progress {
    bar: Option<ProgressBar>,
    terminal: bool,
    batches: usize,
    epochs: usize,
}

impl Progress {
    /// A display suited to where stdout goes.
    pub fn new() -> Self {
        Progress {
            bar: None,
            terminal: std::io::stdout().is_terminal(),
            batches: 0,
            epochs: 0,
        }
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn new_bar(&mut self, epoch: usize, position: usize) {
        if !self.terminal {
            return;
        }
        let bar =
            ProgressBar::with_draw_target(Some(self.batches as u64), ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} eta {eta} · {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, self.epochs));
        bar.set_position(position as u64);
        self.bar = Some(bar);
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(std::io::stdout().lock(), "{text}");
            }
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

fn terms_text(report: &StepReport) -> String {
    let mut parts = vec![format!("loss {:.4}", report.loss)];
    parts.extend(
        report
            .terms
            .iter()
            .map(|(name, v)| format!("{name} {v:.4}")),
    );
    parts.push(format!("{:.0} img/s", report.images_per_sec));
    parts.join(" · ")
}

impl Observer for Progress {
    fn started(&mut self, info: &StartInfo) {
        self.batches = info.batches_per_epoch;
        self.epochs = info.epochs;
        let (epoch, batch) = info.start;
        if epoch >= info.epochs {
            self.line(&format!(
                "`{}` already finished its {} epoch(s); nothing to resume",
                info.run, info.epochs
            ));
        } else if epoch > 0 || batch > 0 {
            self.line(&format!(
                "resuming `{}` at epoch {}/{}, batch {}/{}",
                info.run,
                epoch + 1,
                info.epochs,
                batch + 1,
                info.batches_per_epoch
            ));
        }
        if epoch < info.epochs {
            self.new_bar(epoch, batch);
        }
    }

    fn step(&mut self, report: &StepReport) {
        let text = terms_text(report);
        match &self.bar {
            Some(bar) => {
                bar.set_position((report.batch + 1) as u64);
                bar.set_message(text);
            }
            None => self.line(&format!(
                "epoch {}/{} batch {}/{} lr×{:.4} {text}",
                report.epoch + 1,
                self.epochs,
                report.batch + 1,
                report.batches,
                report.lr_factor
            )),
        }
    }

    fn epoch(&mut self, report: &EpochReport) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let eval: Vec<String> = report
            .eval
            .iter()
            .map(|(name, a)| format!("{name} {:.2}/{:.2}", a.top1, a.top5))
            .collect();
        let best = report
            .best
            .map(|b| format!(" (best {:.2} @ epoch {})", b.top1, b.epoch + 1))
            .unwrap_or_default();
        let loss = report.train.get("loss").copied().unwrap_or(f64::NAN);
        self.line(&format!(
            "epoch {}/{}: loss {loss:.4}; top-1/top-5 {}{best}",
            report.epoch + 1,
            report.epochs,
            eval.join(", ")
        ));
        if report.epoch + 1 < report.epochs {
            self.new_bar(report.epoch + 1, 0);
        }
    }
}
