//! The model zoo: the CIFAR distillation architectures of RepDistiller/CRD and mdistiller, layer
//! for layer, with named taps and a stage-by-stage forward.
//!
//! `base.rs` holds the [`Staged`] trait, `network.rs` the [`Network`] enum and its buildable
//! [`Arch`], `registry.rs` the name table, `params.rs` the parameter inventory; every other file
//! is one architecture headed by its paper.

mod adapter;
mod base;
pub mod layers;
mod mobilenetv2;
mod network;
mod params;
mod registry;
mod resnet;
mod resnet_imagenet;
mod shufflenetv1;
mod shufflenetv2;
mod vgg;
mod wrn;

pub use adapter::{Adapter, AdapterError};
pub use base::{Features, Staged, stage_tap};
pub use network::{Arch, Network, TapShape};
pub use params::{ParamInfo, independent_copy, param_inventory, torch_key, trainable_params};
pub use registry::{ModelSpec, ZOO, ZooEntry, find, names};
