//! How a role's checkpoint was trained to see its inputs, compared with how this run prepares
//! them, at plan time. A teacher fed images normalised with other statistics sees shifted,
//! rescaled inputs (CIFAR-10's constants on CIFAR-100 weights: ×1.05 to ×1.08 per channel and
//! up to 0.06σ of shift) and nothing fails, so a difference is a plan error.
//!
//! The preparation a checkpoint's weights were trained with comes from its header (every kd
//! run and every `kd import --format/--mean/--std` records one) or from
//! `networks.<role>.trained_on = "<preset>"`, which declares it for a file that records none (a
//! PyTorch `.pth`, an import without flags, a checkpoint older than the record): the preset's
//! mean and std, its images' size and the zoo's 32-pixel input ([`DECLARED_INPUT_SIZE`]). The
//! rules, each at its key:
//! - recorded or declared, and other than the run's (mean, std or input size): an error at
//!   `networks.<role>.checkpoint` naming both, unless `networks.<role>.allow_other_preparation
//!   = true`, which turns it into a warning that says so;
//! - declared and recorded, and the two differ: an error at `networks.<role>.trained_on`;
//! - declared for images of other channels than the network takes: an error at
//!   `networks.<role>.trained_on`;
//! - neither, for a role whose weights matter as they are (frozen, or pretrained by a
//!   method's request): a warning naming the key that would declare it.
//!
//! The declared preparation is also what the run records in its import of a PyTorch file
//! (`import/cache.rs`), never one assumed from the run's data.

use std::path::Path;

use crate::checkpoint::{InputPreparation, standard_class_names};
use crate::config::display_path;
use crate::data::{Preset, Split};
use crate::method::PlannedNetwork;

use super::DataPlan;
use super::checkpoints::Checker;
use super::roles::{RoleUse, table_key};

/// The network input side `trained_on` declares: the zoo's CIFAR input, to which 28-pixel
/// digits are centrally padded (kd's default `data.input_size`).
pub const DECLARED_INPUT_SIZE: usize = 32;

/// What a role's checkpoint says about its preparation.
pub(super) enum Recorded<'a> {
    /// The header's record.
    Record(&'a InputPreparation),
    /// The file records none (a PyTorch file, an import without flags, an older checkpoint).
    Nothing,
    /// The file is not there yet (a dry run): a kd run will record one when it writes it.
    NotYet,
}

/// The preparation a preset stands for, for a network of `planned`'s classes: the preset's
/// format, mean and std, its images' size padded to [`DECLARED_INPUT_SIZE`], its class names
/// when the network has as many outputs.
pub(super) fn declared(preset: Preset, num_classes: usize) -> InputPreparation {
    let geometry = preset
        .format()
        .standard_geometry(Split::Train)
        .expect("every preset's format has a standard geometry");
    let format = preset.format().name();
    InputPreparation {
        format: Some(format.to_string()),
        channels: geometry.channels,
        image_size: [geometry.height, geometry.width],
        input_size: DECLARED_INPUT_SIZE,
        mean: preset.mean(),
        std: preset.std(),
        class_names: standard_class_names(format)
            .filter(|names| names.len() == num_classes)
            .map(|names| names.iter().map(|n| n.to_string()).collect()),
    }
}

/// Whether two preparations feed a network the same inputs: mean, std and input size.
fn same_inputs(a: &InputPreparation, mean: &[f32], std: &[f32], input_size: usize) -> bool {
    a.mean == mean && a.std == std && a.input_size == input_size
}

/// This run's preparation, as messages show it.
fn run_words(data: &DataPlan) -> String {
    format!(
        "mean {:?}, std {:?}, input {}x{}",
        data.mean, data.std, data.input_size, data.input_size
    )
}

impl Checker<'_, '_> {
    /// Compares the preparation `path`'s weights were trained with (recorded, or declared by
    /// `networks.<role>.trained_on`) with the run's; problems and warnings are recorded.
    /// Returns the declared preparation, for the import of a PyTorch file.
    pub(super) fn check_preparation(
        &mut self,
        path: &Path,
        recorded: Recorded<'_>,
        uses: &RoleUse,
        planned: &PlannedNetwork,
    ) -> Option<InputPreparation> {
        let role = table_key(&planned.role);
        let config = self.config;
        let network = &config.networks[&planned.role];
        let declared_key = format!("networks.{role}.trained_on");
        let declared = network
            .trained_on
            .map(|preset| (preset, declared(preset, planned.spec.num_classes)));
        if let Some((preset, prepared)) = &declared
            && prepared.channels != planned.spec.in_channels
        {
            self.issues.push(
                &declared_key,
                format!(
                    "`{preset}` images have {} channel(s), but the {} of role `{}` takes {}",
                    prepared.channels, planned.arch_name, planned.role, planned.spec.in_channels
                ),
            );
            return None;
        }
        let file = display_path(path);
        let (trained, how) = match (&recorded, &declared) {
            (Recorded::Record(record), Some((preset, prepared))) => {
                if !same_inputs(record, &prepared.mean, &prepared.std, prepared.input_size) {
                    self.issues.push(
                        &declared_key,
                        format!(
                            "declares `{preset}` (mean {:?}, std {:?}, input {}x{}), but {file} \
                             records that its inputs were prepared as {}; remove the key or \
                             correct it",
                            prepared.mean,
                            prepared.std,
                            prepared.input_size,
                            prepared.input_size,
                            record.describe()
                        ),
                    );
                    return None;
                }
                ((*record).clone(), "as the file records".to_string())
            }
            (Recorded::Record(record), None) => {
                ((*record).clone(), "as the file records".to_string())
            }
            (_, Some((_, prepared))) => (prepared.clone(), format!("as {declared_key} declares")),
            (Recorded::Nothing, None) => {
                self.warn_unchecked(&role, &file, uses);
                return None;
            }
            (Recorded::NotYet, None) => return None,
        };
        let Some(data) = self.data else {
            return declared.map(|(_, p)| p);
        };
        if !same_inputs(&trained, &data.mean, &data.std, data.input_size) {
            let key = format!("networks.{role}.checkpoint");
            let told = format!(
                "{file} was trained on inputs prepared as {} ({how}), but this run feeds it {}",
                trained.describe(),
                run_words(data)
            );
            if network.allow_other_preparation {
                self.warnings.push(format!(
                    "{key}: {told}; fed anyway, as networks.{role}.allow_other_preparation = \
                     true asks"
                ));
            } else {
                self.issues.push(
                    &key,
                    format!(
                        "{told}: its outputs would be computed on shifted inputs; use weights \
                         trained on this run's preparation, or set \
                         networks.{role}.allow_other_preparation = true to feed them anyway"
                    ),
                );
            }
        }
        declared.map(|(_, p)| p)
    }

    /// A file that records no preparation and a role whose weights matter as they are: the
    /// plan cannot compare, and says which key would let it.
    fn warn_unchecked(&mut self, role: &str, file: &str, uses: &RoleUse) {
        let as_they_are = uses.trained_in.is_none() || !uses.pretrained.is_empty();
        let Some(data) = self.data.filter(|_| as_they_are) else {
            return;
        };
        self.warnings.push(format!(
            "networks.{role}.checkpoint: {file} records no input preparation, so whether its \
             weights were trained on inputs prepared as this run's ({}) cannot be checked; \
             declare it with networks.{role}.trained_on = \"<preset>\" (one of {})",
            run_words(data),
            Preset::known()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_declares_its_statistics_and_the_zoo_input() {
        let cifar100 = declared(Preset::Cifar100, 100);
        assert_eq!(cifar100.format.as_deref(), Some("cifar100"));
        assert_eq!(cifar100.mean, [0.5071, 0.4867, 0.4408]);
        assert_eq!(cifar100.std, [0.2675, 0.2565, 0.2761]);
        assert_eq!((cifar100.channels, cifar100.image_size), (3, [32, 32]));
        assert_eq!(cifar100.input_size, 32);
        assert_eq!(cifar100.class_names.as_ref().map(Vec::len), Some(100));
        assert_eq!(cifar100.check(), Ok(()));
        // Digits: 28-pixel images padded to 32, classes by number; a network of other
        // classes than the dataset's gets no names.
        let mnist = declared(Preset::Mnist, 10);
        assert_eq!((mnist.image_size, mnist.input_size), ([28, 28], 32));
        assert_eq!(
            (mnist.mean.as_slice(), mnist.class_names),
            (&[0.1307][..], None)
        );
        assert_eq!(declared(Preset::Cifar10, 100).class_names, None);
    }

    #[test]
    fn inputs_differ_by_mean_std_or_input_size_only() {
        let c10 = declared(Preset::Cifar10, 10);
        let c100 = declared(Preset::Cifar100, 100);
        assert!(same_inputs(&c10, &c10.mean, &c10.std, 32));
        assert!(!same_inputs(&c10, &c100.mean, &c10.std, 32));
        assert!(!same_inputs(&c10, &c10.mean, &c100.std, 32));
        assert!(!same_inputs(&c10, &c10.mean, &c10.std, 36));
        // Class names and the format do not change what the network sees.
        let mut named = c10.clone();
        named.class_names = None;
        named.format = None;
        assert!(same_inputs(&named, &c10.mean, &c10.std, 32));
    }
}
