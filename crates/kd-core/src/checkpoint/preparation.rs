//! The input preparation a checkpoint's networks were trained with: what an image must go
//! through before a network of the checkpoint sees it (channels, the images' size and the
//! input side they are centrally zero-padded to, per-channel normalisation), the names of the
//! classes its outputs stand for, and the data format it was read from.
//!
//! A checkpoint carries one in its header ([`super::CheckpointHeader::preparation`]), so that
//! `kd eval` and `kd predict` prepare images as training did without being told. Checkpoints
//! written before kd recorded it, and PyTorch files, carry none.
//!
//! It knows no data type: the format is stored by its name (`idx`, `cifar10`, `cifar100`,
//! `folder`), which the data layer parses.

use serde::{Deserialize, Serialize};

/// How images were prepared for the networks of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputPreparation {
    /// The data format's name (`idx`, `cifar10`, `cifar100`, `folder`); `None` when unknown
    /// (an import given only `--mean/--std`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Channels per image (1 grey, 3 RGB).
    pub channels: usize,
    /// The source images' size, `[height, width]` in pixels.
    pub image_size: [usize; 2],
    /// Side of the square network input, in pixels; smaller images are zero-padded centrally.
    pub input_size: usize,
    /// Per-channel mean subtracted after scaling pixels to [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub std: Vec<f32>,
    /// The name of every class, by label, when known (an image folder's folder names, a
    /// standard dataset's names); `None` for classes known only by number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
}

/// What is wrong with an [`InputPreparation`]: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct PreparationIssue {
    /// The field's name (`mean`, `std`, `input_size`, `image_size`, `channels`).
    pub field: &'static str,
    /// What is wrong with it, with the values.
    pub message: String,
}

impl InputPreparation {
    /// Checks the record against itself: at least one channel, one finite mean and one finite
    /// positive std per channel, images of at least one pixel that fit the input side, no empty
    /// class list.
    ///
    /// # Errors
    /// The first [`PreparationIssue`] found.
    pub fn check(&self) -> Result<(), PreparationIssue> {
        let issue = |field, message: String| Err(PreparationIssue { field, message });
        if self.channels == 0 {
            return issue("channels", "is 0: an image has at least one channel".into());
        }
        for (field, values) in [("mean", &self.mean), ("std", &self.std)] {
            if values.len() != self.channels {
                return issue(
                    field,
                    format!(
                        "has {} value(s) for {} channel(s)",
                        values.len(),
                        self.channels
                    ),
                );
            }
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return issue(field, format!("holds {bad}, not a finite number"));
            }
        }
        if let Some(bad) = self.std.iter().find(|s| **s <= 0.0) {
            return issue("std", format!("holds {bad}; every value must be positive"));
        }
        let [height, width] = self.image_size;
        if height == 0 || width == 0 {
            return issue(
                "image_size",
                format!("is {height}x{width}: an image has at least one pixel"),
            );
        }
        if self.input_size < height.max(width) {
            return issue(
                "input_size",
                format!(
                    "is {}, smaller than the {height}x{width} images",
                    self.input_size
                ),
            );
        }
        if self.class_names.as_ref().is_some_and(Vec::is_empty) {
            return issue("class_names", "is empty".into());
        }
        Ok(())
    }

    /// One line for people: `idx, 1 channel(s), 28x28 images padded to 32, mean [0.286], std
    /// [0.353], 10 classes named T-shirt, …`.
    pub fn describe(&self) -> String {
        let [height, width] = self.image_size;
        let format = self
            .format
            .as_ref()
            .map(|f| format!("{f}, "))
            .unwrap_or_default();
        let names = match &self.class_names {
            None => "classes by number".to_string(),
            Some(names) => {
                let shown: Vec<&str> = names.iter().take(4).map(String::as_str).collect();
                let more = if names.len() > shown.len() {
                    ", …"
                } else {
                    ""
                };
                format!("{} classes named {}{more}", names.len(), shown.join(", "))
            }
        };
        format!(
            "{format}{} channel(s), {height}x{width} images padded to {}, mean {:?}, std {:?}, \
             {names}",
            self.channels, self.input_size, self.mean, self.std
        )
    }
}

/// Class names worth recording for a split whose reader named its classes `names`: the
/// names themselves when they are more than numbers (an image folder's), else a standard
/// dataset's names for `format` when it has `names.len()` classes (CIFAR-10, CIFAR-100), else
/// `None` (IDX files may hold MNIST, Fashion-MNIST or anything else: their classes stay
/// numbered).
pub fn recordable_class_names(format: &str, names: &[String]) -> Option<Vec<String>> {
    let numbered = names.iter().enumerate().all(|(i, n)| *n == i.to_string());
    if !numbered && !names.is_empty() {
        return Some(names.to_vec());
    }
    standard_class_names(format)
        .filter(|standard| standard.len() == names.len())
        .map(|standard| standard.iter().map(|n| n.to_string()).collect())
}

/// The class names of a format's standard dataset, by label, where the format fixes them:
/// CIFAR-10's (`batches.meta.txt`) and CIFAR-100's fine labels (`fine_label_names`).
pub fn standard_class_names(format: &str) -> Option<&'static [&'static str]> {
    match format {
        "cifar10" => Some(&CIFAR10),
        "cifar100" => Some(&CIFAR100),
        _ => None,
    }
}

const CIFAR10: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const CIFAR100: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn fashion() -> InputPreparation {
        InputPreparation {
            format: Some("idx".into()),
            channels: 1,
            image_size: [28, 28],
            input_size: 32,
            mean: vec![0.25],
            std: vec![0.5],
            class_names: None,
        }
    }

    #[test]
    fn a_consistent_record_passes_and_describes_itself() {
        assert_eq!(fashion().check(), Ok(()));
        assert_eq!(
            fashion().describe(),
            "idx, 1 channel(s), 28x28 images padded to 32, mean [0.25], std [0.5], classes by \
             number"
        );
    }

    #[test]
    fn every_inconsistency_names_its_field_and_values() {
        let message = |edit: fn(&mut InputPreparation)| {
            let mut p = fashion();
            edit(&mut p);
            p.check().unwrap_err().to_string()
        };
        assert_eq!(
            message(|p| p.mean = vec![0.1, 0.2]),
            "`mean` has 2 value(s) for 1 channel(s)"
        );
        assert_eq!(
            message(|p| p.std = vec![f32::NAN]),
            "`std` holds NaN, not a finite number"
        );
        assert_eq!(
            message(|p| p.mean = vec![f32::INFINITY]),
            "`mean` holds inf, not a finite number"
        );
        assert_eq!(
            message(|p| p.std = vec![0.0]),
            "`std` holds 0; every value must be positive"
        );
        assert_eq!(
            message(|p| p.input_size = 16),
            "`input_size` is 16, smaller than the 28x28 images"
        );
        assert_eq!(
            message(|p| p.image_size = [0, 28]),
            "`image_size` is 0x28: an image has at least one pixel"
        );
        assert_eq!(
            message(|p| p.channels = 0),
            "`channels` is 0: an image has at least one channel"
        );
        assert_eq!(
            message(|p| p.class_names = Some(Vec::new())),
            "`class_names` is empty"
        );
    }

    #[test]
    fn class_names_are_recorded_when_they_are_more_than_numbers() {
        let numbered: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(recordable_class_names("idx", &numbered), None);
        let cifar = recordable_class_names("cifar10", &numbered).unwrap();
        assert_eq!(cifar[0], "airplane");
        assert_eq!(cifar[9], "truck");
        // A CIFAR-10 layout with other than 10 classes keeps its numbers.
        assert_eq!(recordable_class_names("cifar10", &numbered[..3]), None);
        let folders = vec!["cat".to_string(), "dog".to_string()];
        assert_eq!(
            recordable_class_names("folder", &folders),
            Some(folders.clone())
        );
    }

    #[test]
    fn the_cifar100_names_are_the_100_fine_labels_in_label_order() {
        let names = standard_class_names("cifar100").unwrap();
        assert_eq!(names.len(), 100);
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, names, "fine labels are numbered alphabetically");
        assert_eq!(names[0], "apple");
        assert_eq!(names[99], "worm");
        assert_eq!(standard_class_names("idx"), None);
    }
}
