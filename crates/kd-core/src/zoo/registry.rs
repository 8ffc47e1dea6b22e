//! The zoo table: every architecture name users can write, and how to build it.
//!
//! One regular table (like ripgrep's flag definitions): name, family, paper, and a function that
//! turns `(num_classes, in_channels)` into an [`Arch`]. Configuration, `kd models` and the plan
//! look names up here; an unknown name is an error listing the known ones.

use super::mobilenetv2::MobileNetV2Config;
use super::network::Arch;
use super::resnet::CifarResNetConfig;
use super::resnet_imagenet::ImageNetResNetConfig;
use super::shufflenetv1::ShuffleNetV1Config;
use super::shufflenetv2::ShuffleNetV2Config;
use super::vgg::VggConfig;
use super::wrn::WideResNetConfig;

/// What the user chooses besides the name: the classifier size and the input channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// Classifier outputs.
    pub num_classes: usize,
    /// Image channels (1 for Fashion-MNIST, 3 for CIFAR).
    pub in_channels: usize,
}

/// One row of the zoo table.
#[derive(Debug, Clone, Copy)]
pub struct ZooEntry {
    /// The name written in configs and on the command line.
    pub name: &'static str,
    /// Other accepted spellings (the reference `model_dict` key where it differs).
    pub aliases: &'static [&'static str],
    /// Architecture family, as the file in `zoo/` that defines it.
    pub family: &'static str,
    /// The paper the architecture comes from.
    pub paper: &'static str,
    /// Builds the architecture description.
    pub arch: fn(ModelSpec) -> Arch,
}

const HE2016: &str = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016";
const WRN: &str = "Zagoruyko & Komodakis, Wide Residual Networks, BMVC 2016";
const VGG: &str = "Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015";

macro_rules! cifar_resnet {
    ($name:literal, $depth:literal, $widths:expr) => {
        ZooEntry {
            name: $name,
            aliases: &[],
            family: "resnet",
            paper: HE2016,
            arch: |s| {
                Arch::CifarResNet(
                    CifarResNetConfig::new($depth, $widths, s.num_classes)
                        .with_in_channels(s.in_channels),
                )
            },
        }
    };
}

macro_rules! wrn {
    ($name:literal, $depth:literal, $widen:literal) => {
        ZooEntry {
            name: $name,
            aliases: &[],
            family: "wrn",
            paper: WRN,
            arch: |s| {
                Arch::WideResNet(
                    WideResNetConfig::new($depth, $widen, s.num_classes)
                        .with_in_channels(s.in_channels),
                )
            },
        }
    };
}

macro_rules! vgg {
    ($name:literal, $alias:literal, $depth:literal) => {
        ZooEntry {
            name: $name,
            aliases: &[$alias],
            family: "vgg",
            paper: VGG,
            arch: |s| {
                Arch::Vgg(VggConfig::new($depth, s.num_classes).with_in_channels(s.in_channels))
            },
        }
    };
}

macro_rules! imagenet_resnet {
    ($name:literal, $blocks:expr, $bottleneck:literal) => {
        ZooEntry {
            name: $name,
            aliases: &[],
            family: "resnet_imagenet",
            paper: HE2016,
            arch: |s| {
                Arch::ImageNetResNet(
                    ImageNetResNetConfig::new($blocks, $bottleneck, s.num_classes)
                        .with_in_channels(s.in_channels),
                )
            },
        }
    };
}

/// Every architecture, in the order `kd models` lists them.
pub const ZOO: &[ZooEntry] = &[
    cifar_resnet!("resnet8", 8, [16, 16, 32, 64]),
    cifar_resnet!("resnet14", 14, [16, 16, 32, 64]),
    cifar_resnet!("resnet20", 20, [16, 16, 32, 64]),
    cifar_resnet!("resnet32", 32, [16, 16, 32, 64]),
    cifar_resnet!("resnet44", 44, [16, 16, 32, 64]),
    cifar_resnet!("resnet56", 56, [16, 16, 32, 64]),
    cifar_resnet!("resnet110", 110, [16, 16, 32, 64]),
    cifar_resnet!("resnet8x4", 8, [32, 64, 128, 256]),
    cifar_resnet!("resnet32x4", 32, [32, 64, 128, 256]),
    wrn!("wrn_16_1", 16, 1),
    wrn!("wrn_16_2", 16, 2),
    wrn!("wrn_40_1", 40, 1),
    wrn!("wrn_40_2", 40, 2),
    vgg!("vgg8", "vgg8_bn", 8),
    vgg!("vgg11", "vgg11_bn", 11),
    vgg!("vgg13", "vgg13_bn", 13),
    vgg!("vgg16", "vgg16_bn", 16),
    vgg!("vgg19", "vgg19_bn", 19),
    ZooEntry {
        name: "MobileNetV2",
        aliases: &["mobile_half"],
        family: "mobilenetv2",
        paper: "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018",
        arch: |s| {
            Arch::MobileNetV2(MobileNetV2Config::new(s.num_classes).with_in_channels(s.in_channels))
        },
    },
    ZooEntry {
        name: "ShuffleV1",
        aliases: &[],
        family: "shufflenetv1",
        paper: "Zhang et al., ShuffleNet: An Extremely Efficient CNN for Mobile Devices, CVPR 2018",
        arch: |s| {
            Arch::ShuffleNetV1(
                ShuffleNetV1Config::new(s.num_classes).with_in_channels(s.in_channels),
            )
        },
    },
    ZooEntry {
        name: "ShuffleV2",
        aliases: &[],
        family: "shufflenetv2",
        paper: "Ma et al., ShuffleNet V2: Practical Guidelines for Efficient CNN Design, ECCV 2018",
        arch: |s| {
            Arch::ShuffleNetV2(
                ShuffleNetV2Config::new(s.num_classes).with_in_channels(s.in_channels),
            )
        },
    },
    imagenet_resnet!("ResNet18", [2, 2, 2, 2], false),
    imagenet_resnet!("ResNet34", [3, 4, 6, 3], false),
    imagenet_resnet!("ResNet50", [3, 4, 6, 3], true),
];

/// Looks a name (or alias) up in [`ZOO`].
pub fn find(name: &str) -> Option<&'static ZooEntry> {
    ZOO.iter()
        .find(|entry| entry.name == name || entry.aliases.contains(&name))
}

/// The canonical names, in table order.
pub fn names() -> Vec<&'static str> {
    ZOO.iter().map(|entry| entry.name).collect()
}
